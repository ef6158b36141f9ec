"""One settings object for the whole application, read from PARCOURS_* variables."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[3]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARCOURS_", env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{ROOT / 'var' / 'parcours.db'}"
    secret_key: str = ""
    session_max_age_s: int = 12 * 3600
    token_max_age_s: int = 30 * 24 * 3600
    max_body_bytes: int = 1_000_000
    login_max_failures: int = 5
    login_lockout_s: int = 15 * 60
    demo_password: str = ""
    default_language: str = "fr"
    timezone: str = "Europe/Paris"
    cookie_secure: bool = False
    static_dir: Path = ROOT / "web" / "node_modules"
    content_dir: Path = ROOT / "var" / "content"
    content_max_bytes: int = 200_000_000
    content_max_unpacked_bytes: int = 500_000_000
    content_max_pages: int = 500
    soffice: str = "soffice"
    convert_timeout_s: int = 180
    embedded_worker: bool = True
    worker_poll_s: float = 1.0
    # outgoing mail (core/mailer.py); the password comes from the environment only
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout_s: float = 30.0
    mail_from: str = "parcours <no-reply@parcours.local>"
    public_url: str = "http://127.0.0.1:8000"
    # DKIM signing of outgoing mail, when a key is configured (PEM file, never in the code)
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key_path: Path | None = None
    # Approved Email gates: promotional frequency cap and quiet hours (HCP's local time)
    email_cap_count: int = 2
    email_cap_days: int = 14
    email_quiet_start_h: int = 20
    email_quiet_end_h: int = 8
    # how long a worker holds a batch of messages to send; a dead worker's batch is taken
    # up again after this (never sent twice: each message is marked before its SMTP exchange)
    email_send_lease_s: int = 120
    # a Maildir the mail server delivers bounce reports (DSN) to; the worker reads it
    bounce_maildir: Path | None = None
    # WebRTC ICE servers for meeting rooms, as RTCPeerConnection takes them, e.g.
    # [{"urls": "turn:turn.lab.example:3478", "username": "…", "credential": "…"}] (coturn);
    # none by default: peers on one network connect directly, nothing leaves it
    meeting_ice_servers: list[dict] = []
    # the KPI snapshot (Parquet files read by DuckDB) and how often the worker refreshes it
    analytics_dir: Path = ROOT / "var" / "analytics"
    analytics_refresh_s: int = 60
    # insight search: the indexes (derived from the database), the uploaded files, a folder
    # the worker watches for new and changed files, and the largest file it takes
    insight_dir: Path = ROOT / "var" / "insight"
    insight_watch_dir: Path | None = None
    insight_watch_s: int = 60
    insight_max_bytes: int = 100_000_000
    # the lexical index: tantivy files beside the app (one machine), or PostgreSQL's own
    # full-text search when several app nodes share one database
    insight_lexical: Literal["tantivy", "postgres", "opensearch"] = "tantivy"
    # OpenSearch, when insight_lexical is "opensearch": the cluster, the index, credentials
    opensearch_url: str = "http://127.0.0.1:9200"
    opensearch_index: str = "parcours-insight"
    opensearch_user: str = ""
    opensearch_password: str = ""
    # who may read what comes from each SharePoint drive, as a watched folder's .insight.json:
    # {"<drive id>": {"roles": ["marketing"], "category": "market_research"}}; admins only
    # when a drive has no rules
    graph_drive_rules: dict[str, dict] = {}
    # an OpenAI-compatible chat-completions endpoint (vLLM, Ollama, Mistral, OpenAI) that
    # writes cited answers; none by default: answers stay extractive. The key comes from the
    # environment only.
    llm_base_url: str | None = None
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_s: float = 30.0
    # SharePoint / OneDrive over Microsoft Graph (ai/sharepoint.py): an Entra ID app with
    # application permissions; the secret comes from the environment only. The drives are
    # drive ids, comma-separated in the environment.
    graph_tenant_id: str = ""
    graph_client_id: str = ""
    graph_client_secret: str = ""
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    graph_login_url: str = "https://login.microsoftonline.com"
    graph_drives: Annotated[
        list[str],
        NoDecode,
        BeforeValidator(
            lambda v: [d.strip() for d in v.split(",") if d.strip()] if isinstance(v, str) else v
        ),
    ] = []

    def secret(self) -> str:
        """The signing secret: configured, or one generated and kept under var/."""
        if self.secret_key:
            return self.secret_key
        path = ROOT / "var" / "secret_key"
        if not path.exists():
            import os
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: when several workers start together, exactly one writes it
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
        for _ in range(50):  # another worker may be writing it right now
            value = path.read_text().strip()
            if value:
                return value
            import time

            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: remove it or set PARCOURS_SECRET_KEY")


@lru_cache
def get_settings() -> Settings:
    return Settings()
