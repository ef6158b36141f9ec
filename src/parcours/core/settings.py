"""One settings object for the whole application, read from PARCOURS_* variables."""

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

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

    def secret(self) -> str:
        """The signing secret: configured, or one generated and kept under var/."""
        if self.secret_key:
            return self.secret_key
        path = ROOT / "var" / "secret_key"
        if not path.exists():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
