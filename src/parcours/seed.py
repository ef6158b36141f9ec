"""Deterministic demo and scale data: users, territories, HCPs, HCOs, activities, tasks.

`run(engine, hcps=..., reps=..., months=..., seed=...)` fills an empty, migrated database.
The same arguments (including `today`) always give the same rows.

Everything is streamed in batches, with ids assigned here, straight through the DBAPI
(executemany on SQLite, COPY on PostgreSQL): 1,000,000 HCPs and 50,000,000 activities
load in bounded memory. Rows written this way bypass the ORM and therefore its per-row
audit records; one audit record for the whole load is written at the end.

Faker is used once, to draw pools of names and streets per country; every other field
comes from precomputed pools indexed by one `random.Random(seed)`.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from faker import Faker
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from parcours.accounts.text import search_key
from parcours.core import audit
from parcours.core.security import hash_password

Progress = Callable[[str, int, int], None]

BATCH = 20_000
COMMIT_EVERY = 200_000

DEMO_DOMAIN = "parcours.demo"

# --------------------------------------------------------------------------- reference data

# country code -> (name, language, Faker locale, time zone, weight)
COUNTRIES: dict[str, tuple[str, str, str, str, float]] = {
    "FR": ("France", "fr", "fr_FR", "Europe/Paris", 0.30),
    "DE": ("Deutschland", "de", "de_DE", "Europe/Berlin", 0.22),
    "IT": ("Italia", "it", "it_IT", "Europe/Rome", 0.18),
    "ES": ("España", "es", "es_ES", "Europe/Madrid", 0.15),
    "GB": ("United Kingdom", "en", "en_GB", "Europe/London", 0.15),
}

# country -> [(region code, region name, weight, "city|postcode postcode;city|postcode;...")]
REGIONS: dict[str, list[tuple[str, str, float, str]]] = {
    "FR": [
        (
            "IDF",
            "Île-de-France",
            0.30,
            "Paris|75005 75008 75010 75012 75013 75014 75015 75016 75017 75020;"
            "Boulogne-Billancourt|92100;Versailles|78000;Saint-Denis|93200;Créteil|94000;"
            "Nanterre|92000;Argenteuil|95100;Montreuil|93100;Vincennes|94300;"
            "Neuilly-sur-Seine|92200;Évry-Courcouronnes|91000;Cergy|95000;Melun|77000;Meaux|77100",
        ),
        (
            "ARA",
            "Auvergne-Rhône-Alpes",
            0.15,
            "Lyon|69002 69003 69006 69007 69008;Villeurbanne|69100;Grenoble|38000;"
            "Saint-Étienne|42000;Clermont-Ferrand|63000;Annecy|74000;Chambéry|73000;"
            "Valence|26000;Vénissieux|69200",
        ),
        (
            "PAC",
            "Provence-Alpes-Côte d'Azur",
            0.11,
            "Marseille|13001 13005 13008 13009 13013;Nice|06000 06100;Toulon|83000;"
            "Aix-en-Provence|13100;Avignon|84000;Cannes|06400;Antibes|06600",
        ),
        (
            "OCC",
            "Occitanie",
            0.10,
            "Toulouse|31000 31300 31400 31500;Montpellier|34000 34070;Nîmes|30000;"
            "Perpignan|66000;Béziers|34500;Albi|81000",
        ),
        (
            "NAQ",
            "Nouvelle-Aquitaine",
            0.09,
            "Bordeaux|33000 33200 33300 33800;Limoges|87000;Poitiers|86000;Pau|64000;"
            "La Rochelle|17000;Mérignac|33700;Bayonne|64100",
        ),
        (
            "HDF",
            "Hauts-de-France",
            0.09,
            "Lille|59000 59800;Amiens|80000;Roubaix|59100;Tourcoing|59200;Dunkerque|59140;"
            "Calais|62100",
        ),
        (
            "GES",
            "Grand Est",
            0.08,
            "Strasbourg|67000 67100 67200;Reims|51100;Metz|57000;Mulhouse|68100;Nancy|54000;"
            "Colmar|68000",
        ),
        (
            "PDL",
            "Pays de la Loire",
            0.05,
            "Nantes|44000 44100 44300;Angers|49000;Le Mans|72000;Saint-Nazaire|44600",
        ),
        (
            "BRE",
            "Bretagne",
            0.05,
            "Rennes|35000 35200 35700;Brest|29200;Quimper|29000;Lorient|56100;Vannes|56000",
        ),
    ],
    "DE": [
        (
            "BY",
            "Bayern",
            0.20,
            "München|80331 80333 80469 80639 81369;Nürnberg|90402 90429;Augsburg|86150;"
            "Regensburg|93047;Würzburg|97070;Ingolstadt|85049",
        ),
        (
            "NW",
            "Nordrhein-Westfalen",
            0.24,
            "Köln|50667 50672 50931;Düsseldorf|40210 40213 40479;Dortmund|44135 44137;"
            "Essen|45127 45128;Bonn|53111 53113;Münster|48143",
        ),
        (
            "BW",
            "Baden-Württemberg",
            0.16,
            "Stuttgart|70173 70174 70176;Karlsruhe|76133;Mannheim|68159 68161;"
            "Freiburg im Breisgau|79098;Heidelberg|69117;Ulm|89073",
        ),
        (
            "BE",
            "Berlin",
            0.12,
            "Berlin|10115 10117 10178 10243 10435 10551 10707 10785 12043 13353",
        ),
        (
            "HE",
            "Hessen",
            0.10,
            "Frankfurt am Main|60311 60313 60594;Wiesbaden|65183;Kassel|34117;Darmstadt|64283",
        ),
        ("HH", "Hamburg", 0.08, "Hamburg|20095 20099 20144 20249 20354 22041 22085 22303"),
        (
            "NI",
            "Niedersachsen",
            0.10,
            "Hannover|30159 30161 30169;Braunschweig|38100;Osnabrück|49074;Oldenburg|26122;"
            "Göttingen|37073",
        ),
    ],
    "IT": [
        (
            "LOM",
            "Lombardia",
            0.22,
            "Milano|20121 20122 20129 20135 20144 20154;Bergamo|24121;Brescia|25121;"
            "Monza|20900;Como|22100;Varese|21100;Pavia|27100",
        ),
        (
            "LAZ",
            "Lazio",
            0.16,
            "Roma|00118 00153 00161 00185 00192 00198;Latina|04100;Viterbo|01100;Frosinone|03100",
        ),
        (
            "CAM",
            "Campania",
            0.12,
            "Napoli|80121 80131 80138 80142;Salerno|84121;Caserta|81100;Avellino|83100",
        ),
        (
            "VEN",
            "Veneto",
            0.12,
            "Venezia|30121 30171;Verona|37121 37122;Padova|35121 35128;Vicenza|36100;Treviso|31100",
        ),
        (
            "EMR",
            "Emilia-Romagna",
            0.11,
            "Bologna|40121 40126 40138;Modena|41121;Parma|43121;Reggio Emilia|42121;Rimini|47921",
        ),
        (
            "PIE",
            "Piemonte",
            0.10,
            "Torino|10121 10128 10138 10152;Novara|28100;Alessandria|15121;Cuneo|12100",
        ),
        (
            "SIC",
            "Sicilia",
            0.09,
            "Palermo|90121 90133 90141;Catania|95121 95124;Messina|98121;Siracusa|96100",
        ),
        ("TOS", "Toscana", 0.08, "Firenze|50121 50129 50134;Pisa|56121;Livorno|57121;Siena|53100"),
    ],
    "ES": [
        (
            "MD",
            "Comunidad de Madrid",
            0.25,
            "Madrid|28001 28004 28010 28014 28020 28028 28034 28046;Alcalá de Henares|28801;"
            "Móstoles|28931;Getafe|28901;Leganés|28911;Alcobendas|28100",
        ),
        (
            "CT",
            "Cataluña",
            0.23,
            "Barcelona|08001 08008 08013 08025 08029 08036;L'Hospitalet de Llobregat|08901;"
            "Badalona|08911;Terrassa|08221;Sabadell|08201;Girona|17001;Tarragona|43001;Lleida|25001",
        ),
        (
            "AN",
            "Andalucía",
            0.20,
            "Sevilla|41001 41003 41013;Málaga|29001 29010;Córdoba|14001;Granada|18001;"
            "Almería|04001;Cádiz|11001",
        ),
        (
            "VC",
            "Comunitat Valenciana",
            0.14,
            "Valencia|46001 46010 46015;Alicante|03001;Elche|03201;Castellón de la Plana|12001",
        ),
        (
            "PV",
            "País Vasco",
            0.09,
            "Bilbao|48001 48009 48013;Vitoria-Gasteiz|01001;San Sebastián|20001",
        ),
        (
            "GA",
            "Galicia",
            0.09,
            "Vigo|36201;A Coruña|15001;Santiago de Compostela|15701;Ourense|32001",
        ),
    ],
    "GB": [
        (
            "LDN",
            "London",
            0.28,
            "London|E1 6AN;London|SW1A 1AA;London|N1 9GU;London|SE1 7EH;London|W1T 1JY;"
            "London|NW1 2DB;Croydon|CR0 1NX;Kingston upon Thames|KT1 1EU;Harrow|HA1 1BA",
        ),
        (
            "SEE",
            "South East",
            0.18,
            "Brighton|BN1 1AA;Oxford|OX1 1DP;Reading|RG1 1JX;Southampton|SO14 7DY;"
            "Portsmouth|PO1 2AL;Canterbury|CT1 2HX",
        ),
        (
            "NWE",
            "North West",
            0.14,
            "Manchester|M1 1AD M13 9PL;Liverpool|L1 8JQ L7 8XP;Preston|PR1 2HE;Bolton|BL1 1RU;"
            "Stockport|SK1 1EB",
        ),
        (
            "WMD",
            "West Midlands",
            0.12,
            "Birmingham|B1 1BB B15 2TT;Coventry|CV1 2GT;Wolverhampton|WV1 1SH;"
            "Stoke-on-Trent|ST1 1HP",
        ),
        (
            "YKS",
            "Yorkshire and the Humber",
            0.12,
            "Leeds|LS1 4DY LS9 7TF;Sheffield|S1 2HH S10 2JF;Bradford|BD1 1HY;York|YO1 7HH;"
            "Hull|HU1 2AA",
        ),
        (
            "SCT",
            "Scotland",
            0.16,
            "Edinburgh|EH1 1YZ EH16 4SA;Glasgow|G1 1XQ G51 4TF;Aberdeen|AB10 1AB;Dundee|DD1 1DB",
        ),
    ],
}

SEGMENTS = (  # code, name, tier, share of HCPs, activity weight, planned calls per cycle
    ("A", "Tier A: key prescribers", 1, 0.10, 2.6, 8),
    ("B", "Tier B: high potential", 2, 0.20, 1.6, 6),
    ("C", "Tier C: medium potential", 3, 0.30, 0.8, 3),
    ("D", "Tier D: low potential", 4, 0.40, 0.35, 1),
)
TARGET_SHARE = (1.0, 0.9, 0.6, 0.25)  # share of each segment on the target lists

PRODUCTS = (  # code, brand, therapeutic area, key messages
    (
        "VAC",
        "Vaccelia",
        "Vaccines",
        (
            "Protection from 6 weeks of age",
            "One dose, long-lasting immunity",
            "Recommended in the national schedule",
            "Well tolerated in adults 65+",
        ),
    ),
    (
        "ONC",
        "Oncoryl",
        "Oncology",
        (
            "Overall survival benefit in 2L NSCLC",
            "Manageable safety profile",
            "Oral once-daily dosing",
            "Biomarker testing at diagnosis",
        ),
    ),
    (
        "CAR",
        "Cardivane",
        "Cardiology",
        (
            "Reduces cardiovascular events by 20%",
            "Once-daily fixed-dose combination",
            "No dose adjustment in the elderly",
            "Improves adherence",
        ),
    ),
    (
        "RES",
        "Respiflo",
        "Respiratory",
        (
            "Fewer exacerbations in COPD",
            "Easy-to-use inhaler",
            "Rapid onset of action",
            "Step-up in uncontrolled asthma",
        ),
    ),
    (
        "DIA",
        "Glycentra",
        "Diabetes",
        (
            "HbA1c reduction with weight loss",
            "Low risk of hypoglycaemia",
            "Weekly injection",
            "Renal protection data",
        ),
    ),
    (
        "IMM",
        "Dermalys",
        "Immunology & dermatology",
        (
            "Clear skin at week 16",
            "Sustained response over 3 years",
            "Subcutaneous every 4 weeks",
            "Early treatment in moderate-to-severe disease",
        ),
    ),
)

# specialty, profession, weight, product codes it is detailed on, hospital-based
SPECIALTIES = (
    ("General practice", "physician", 28, ("VAC", "CAR", "DIA", "RES"), False),
    ("Cardiology", "physician", 6, ("CAR",), True),
    ("Oncology", "physician", 5, ("ONC",), True),
    ("Paediatrics", "physician", 6, ("VAC",), False),
    ("Infectious diseases", "physician", 3, ("VAC",), True),
    ("Pulmonology", "physician", 4, ("RES", "ONC"), True),
    ("Endocrinology", "physician", 4, ("DIA",), False),
    ("Rheumatology", "physician", 3, ("IMM",), False),
    ("Dermatology", "physician", 4, ("IMM",), False),
    ("Neurology", "physician", 3, (), True),
    ("Gastroenterology", "physician", 3, ("IMM",), True),
    ("Geriatrics", "physician", 3, ("VAC", "CAR"), True),
    ("Internal medicine", "physician", 4, ("CAR", "DIA"), True),
    ("Haematology", "physician", 2, ("ONC",), True),
    ("Nephrology", "physician", 2, ("DIA",), True),
    ("Community pharmacy", "pharmacist", 8, ("VAC", "RES"), False),
    ("Hospital pharmacy", "pharmacist", 2, ("ONC", "IMM"), True),
    ("Nursing", "nurse", 5, ("VAC", "DIA"), False),
)

AFFILIATION_ROLES = {
    "physician": ("Attending physician", "Head of department", "Consultant", "Associate"),
    "pharmacist": ("Pharmacist", "Head pharmacist"),
    "nurse": ("Nurse", "Head nurse", "Nurse practitioner"),
}

# titles per country: physician (m, f), professor (m, f), other (m, f)
TITLES = {
    "FR": (("Dr", "Dr"), ("Pr", "Pr"), ("M.", "Mme")),
    "DE": (("Dr.", "Dr."), ("Prof. Dr.", "Prof. Dr."), ("Herr", "Frau")),
    "IT": (("Dott.", "Dott.ssa"), ("Prof.", "Prof.ssa"), ("Sig.", "Sig.ra")),
    "ES": (("Dr.", "Dra."), ("Prof.", "Prof.ª"), ("Sr.", "Sra.")),
    "GB": (("Dr", "Dr"), ("Prof", "Prof"), ("Mr", "Ms")),
}

HCO_TEMPLATES = {  # hco_type -> name templates ({city}, {name})
    "FR": {
        "hospital": ("Centre hospitalier de {city}", "CHU de {city}", "Hôpital {name}"),
        "clinic": ("Clinique {name}", "Clinique du Parc de {city}", "Polyclinique de {city}"),
        "pharmacy": ("Pharmacie {name}", "Pharmacie de la Gare", "Grande Pharmacie de {city}"),
        "practice": (
            "Cabinet médical {name}",
            "Maison de santé de {city}",
            "Centre de santé {name}",
        ),
        "laboratory": ("Laboratoire d'analyses {name}", "Biolab {city}"),
        "university": ("Faculté de médecine de {city}", "Institut universitaire {name}"),
    },
    "DE": {
        "hospital": ("Klinikum {city}", "Städtisches Krankenhaus {city}", "St.-{name}-Hospital"),
        "clinic": ("Privatklinik {name}", "Tagesklinik {city}"),
        "pharmacy": ("{name}-Apotheke", "Stadt-Apotheke {city}", "Bahnhof-Apotheke {city}"),
        "practice": ("Praxis Dr. {name}", "Gemeinschaftspraxis {name}", "MVZ {city}"),
        "laboratory": ("Labor {name}", "Medizinisches Labor {city}"),
        "university": ("Universitätsklinikum {city}",),
    },
    "IT": {
        "hospital": ("Ospedale di {city}", "Ospedale San {name}", "Azienda Ospedaliera di {city}"),
        "clinic": ("Casa di Cura {name}", "Clinica {name}"),
        "pharmacy": ("Farmacia {name}", "Farmacia Centrale di {city}"),
        "practice": ("Studio Medico {name}", "Poliambulatorio {city}"),
        "laboratory": ("Laboratorio Analisi {name}",),
        "university": ("Policlinico Universitario di {city}",),
    },
    "ES": {
        "hospital": ("Hospital de {city}", "Hospital General de {city}", "Hospital {name}"),
        "clinic": ("Clínica {name}", "Clínica Médica {city}"),
        "pharmacy": ("Farmacia {name}", "Farmacia Central de {city}"),
        "practice": ("Consultorio {name}", "Centro de Salud {city}"),
        "laboratory": ("Laboratorio {name}", "Análisis Clínicos {city}"),
        "university": ("Hospital Universitario de {city}",),
    },
    "GB": {
        "hospital": ("{city} General Hospital", "Royal {city} Infirmary", "St {name}'s Hospital"),
        "clinic": ("{name} Clinic", "{city} Private Clinic"),
        "pharmacy": ("{name} Pharmacy", "{city} Chemist"),
        "practice": ("{name} Medical Practice", "{city} Health Centre", "{name} Surgery"),
        "laboratory": ("{city} Pathology Laboratory",),
        "university": ("University Hospital {city}",),
    },
}
HCO_TYPE_WEIGHTS = {
    "hospital": 12,
    "clinic": 13,
    "pharmacy": 30,
    "practice": 35,
    "laboratory": 6,
    "university": 4,
}

EMAIL_DOMAINS = {  # reserved .example domains: demo addresses can never reach anybody
    "FR": ("medecins.example", "sante-mail.example", "cabinet.example"),
    "DE": ("aerzte.example", "praxis-mail.example", "klinik.example"),
    "IT": ("medici.example", "studio-medico.example", "salute.example"),
    "ES": ("medicos.example", "consulta.example", "salud.example"),
    "GB": ("nhs-mail.example", "surgery.example", "clinic.example"),
}

PREFERRED_CHANNELS = (
    ("field_visit", 40),
    ("email", 20),
    ("remote_detailing", 15),
    ("phone", 10),
    ("webinar", 5),
    (None, 10),
)

# channel, share, kinds (weighted), durations, local start window (minutes), outcome?
CHANNEL_MIX = (
    (
        "field_visit",
        45,
        (("detail", 85), ("sample_drop", 10), ("group_meeting", 5)),
        (10, 15, 15, 20, 20, 30, 30, 45),
        (8 * 60 + 30, 18 * 60),
        True,
    ),
    ("phone", 15, (("call", 100),), (5, 5, 10, 10, 15, 20), (9 * 60, 18 * 60), True),
    (
        "remote_detailing",
        15,
        (("detail", 100),),
        (10, 15, 15, 15, 15, 20, 30),
        (8 * 60, 19 * 60),
        True,
    ),
    (
        "email",
        15,
        (("sent", 45), ("opened", 35), ("clicked", 20)),
        (None,),
        (7 * 60, 20 * 60),
        False,
    ),
    (
        "webinar",
        4,
        (("registered", 30), ("attended", 70)),
        (45, 60, 60, 90),
        (12 * 60 + 30, 20 * 60),
        False,
    ),
    ("event", 2, (("attended", 100),), (120, 240, 480), (8 * 60, 10 * 60), False),
    ("web", 3, (("visit", 80), ("download", 20)), (2, 3, 5, 8, 12), (7 * 60, 22 * 60), False),
    ("survey", 1, (("completed", 100),), (5, 10), (7 * 60, 21 * 60), False),
)
CALL_OUTCOMES = (("positive", 40), ("neutral", 35), ("negative", 8), ("no_contact", 17))
GROUP_SHARE = 0.02

SUBJECTS = {
    "fr": {
        "field_visit": ("Visite {p}", "Présentation {p}", "Point sur {p}"),
        "phone": ("Appel de suivi {p}", "Appel {p}"),
        "remote_detailing": ("Visio {p}", "Présentation à distance {p}"),
        "email": ("Email approuvé : {p}", "Newsletter {p}"),
        "webinar": ("Webinaire {p}", "Webinaire experts {p}"),
        "event": ("Congrès — symposium {p}", "Soirée scientifique {p}"),
        "web": ("Visite du site {p}",),
        "survey": ("Questionnaire {p}",),
    },
    "en": {
        "field_visit": ("{p} visit", "{p} presentation", "{p} update"),
        "phone": ("{p} follow-up call", "{p} call"),
        "remote_detailing": ("{p} remote detailing", "{p} video call"),
        "email": ("Approved email: {p}", "{p} newsletter"),
        "webinar": ("{p} webinar", "{p} expert webinar"),
        "event": ("Congress — {p} symposium", "{p} scientific evening"),
        "web": ("{p} website visit",),
        "survey": ("{p} survey",),
    },
}
GENERIC_SUBJECTS = {  # contacts without a product (specialties no brand is detailed to)
    "fr": (
        "Visite",
        "Appel",
        "Visio",
        "Email institutionnel",
        "Webinaire",
        "Congrès",
        "Visite du site",
        "Questionnaire",
    ),
    "en": (
        "Visit",
        "Call",
        "Video call",
        "Corporate email",
        "Webinar",
        "Congress",
        "Website visit",
        "Survey",
    ),
}
NOTES = {
    "fr": (
        "Intéressé par les nouvelles données.",
        "Demande d'échantillons.",
        "Souhaite une invitation au prochain webinaire.",
        "Peu de temps, à revoir.",
        "Questions sur la tolérance, réponse envoyée.",
        "Prescrit déjà régulièrement.",
    ),
    "en": (
        "Interested in the new data.",
        "Asked for samples.",
        "Would like an invitation to the next webinar.",
        "Short on time, follow up.",
        "Questions on tolerability, answer sent.",
        "Already prescribes regularly.",
    ),
}
TASKS = {
    "fr": (
        "Envoyer la documentation {p}",
        "Rappeler au sujet de {p}",
        "Inviter au webinaire {p}",
        "Déposer des échantillons {p}",
        "Répondre à la question médicale sur {p}",
        "Planifier une visio {p}",
    ),
    "en": (
        "Send the {p} leaflet",
        "Call back about {p}",
        "Invite to the {p} webinar",
        "Drop off {p} samples",
        "Answer the medical question on {p}",
        "Schedule a {p} remote detailing",
    ),
}

# --------------------------------------------------------------------------- result, errors


@dataclass
class SeedResult:
    users: int
    hcps: int
    hcos: int
    activities: int
    tasks: int
    seconds: float
    password: str


# columns written for each table, in FK-safe flush order
COLUMNS: dict[str, tuple[str, ...]] = {
    "segments": ("id", "code", "name", "tier"),
    "products": ("id", "code", "name", "therapeutic_area", "is_active"),
    "territories": ("id", "code", "name", "level", "parent_id", "path", "country"),
    "users": (
        "id",
        "email",
        "full_name",
        "role",
        "language",
        "country",
        "manager_id",
        "password_hash",
        "is_active",
        "failed_logins",
        "created_at",
    ),
    "user_territories": ("id", "user_id", "territory_id"),
    "target_lists": ("id", "name", "product_id", "cycle_start", "cycle_end"),
    "accounts": (
        "id",
        "kind",
        "title",
        "first_name",
        "last_name",
        "specialty",
        "profession",
        "name",
        "hco_type",
        "emails",
        "phones",
        "preferred_language",
        "preferred_channel",
        "segment_id",
        "country",
        "search_name",
        "city",
        "city_key",
        "status",
        "created_at",
        "updated_at",
    ),
    "account_identifiers": ("id", "account_id", "system", "value"),
    "addresses": (
        "id",
        "account_id",
        "line1",
        "line2",
        "postal_code",
        "city",
        "country",
        "is_primary",
    ),
    "affiliations": ("id", "hcp_id", "hco_id", "role", "is_primary"),
    "account_territories": ("id", "account_id", "territory_id"),
    "target_list_entries": ("id", "target_list_id", "account_id", "planned_calls"),
    "activities": (
        "id",
        "channel",
        "kind",
        "status",
        "owner_id",
        "account_id",
        "start_at",
        "duration_min",
        "subject",
        "outcome",
        "notes",
        "product_ids",
        "key_messages",
        "submitted_at",
        "created_at",
        "updated_at",
    ),
    "activity_attendees": ("id", "activity_id", "account_id", "start_at", "channel"),
    "tasks": (
        "id",
        "owner_id",
        "account_id",
        "activity_id",
        "title",
        "due_date",
        "status",
        "created_at",
        "done_at",
    ),
}
ORDER = tuple(COLUMNS)
# big tables: on large loads their secondary indexes (and, on PostgreSQL, their foreign keys)
# are dropped during the load and created again at the end, which is much faster
BULK_TABLES = (
    "accounts",
    "account_identifiers",
    "addresses",
    "affiliations",
    "account_territories",
    "target_list_entries",
    "activities",
    "activity_attendees",
)


# --------------------------------------------------------------------------- writer


# SQLite settings for the load (restored afterwards): no per-row foreign key checks (ids are
# assigned here, consistently), no fsync, a 256 MiB page cache (also the sorter's memory)
SQLITE_PRAGMAS = {"foreign_keys": "OFF", "synchronous": "OFF", "cache_size": "-262144"}


class _Writer:
    """Buffers rows per table and writes them in batches, parents before children."""

    def __init__(self, engine: Engine, batch: int, drop_indexes: bool) -> None:
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"seeding supports SQLite and PostgreSQL, not {self.dialect}")
        self.raw = engine.raw_connection()
        self.dbapi = self.raw.driver_connection
        self.batch = batch
        self.buffers: dict[str, list[tuple]] = {t: [] for t in ORDER}
        self.written: dict[str, int] = dict.fromkeys(ORDER, 0)
        self.pending = 0
        self.dropped: list[str] = []
        self.drop_indexes = drop_indexes
        self.pg = self.dialect == "postgresql"
        # text for timestamps: SQLite stores naive UTC, PostgreSQL parses the offset
        self.ts_suffix = "+00" if self.pg else ".000000"
        self._pragmas: dict[str, object] = {}
        self._sql = {
            t: "INSERT INTO {} ({}) VALUES ({})".format(t, ", ".join(c), ", ".join("?" * len(c)))
            for t, c in COLUMNS.items()
        }

    # -- session setup
    def begin(self) -> None:
        cur = self.dbapi.cursor()
        if self.pg:
            cur.execute("SET synchronous_commit = off")
        else:
            if self.dbapi.in_transaction:
                self.dbapi.commit()
            self._pragmas = {p: cur.execute(f"PRAGMA {p}").fetchone()[0] for p in SQLITE_PRAGMAS}
            for name, value in SQLITE_PRAGMAS.items():
                cur.execute(f"PRAGMA {name}={value}")
            cur.execute("BEGIN")
        cur.close()
        if self.drop_indexes:
            self._drop_bulk_indexes()

    def _drop_bulk_indexes(self) -> None:
        cur = self.dbapi.cursor()
        for table in BULK_TABLES:
            if self.pg:
                cur.execute(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                    "WHERE i.schemaname = current_schema() AND i.tablename = %s AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conindid = "
                    "(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
                    (table,),
                )
            else:
                cur.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = ? AND sql IS NOT NULL",
                    (table,),
                )
            for name, ddl in cur.fetchall():
                cur.execute(f'DROP INDEX "{name}"')
                self.dropped.append(ddl)
            if self.pg:  # foreign keys are checked row by row by triggers: check once at the end
                cur.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f'",
                    (table,),
                )
                for name, ddl in cur.fetchall():
                    cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                    self.dropped.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
        cur.close()
        self.commit()

    def restore_indexes(self, progress: Progress | None) -> None:
        cur = self.dbapi.cursor()
        if self.pg:
            cur.execute("SET maintenance_work_mem = '512MB'")
        for i, ddl in enumerate(self.dropped):
            if progress:
                progress("indexes", i, len(self.dropped))
            cur.execute(ddl)
        if progress:
            progress("indexes", len(self.dropped), len(self.dropped))
        self.dropped = []
        cur.close()
        self.commit(reopen=False)

    # -- rows
    def add(self, table: str, row: tuple) -> None:
        buf = self.buffers[table]
        buf.append(row)
        if len(buf) >= self.batch:
            self.flush(table)

    def flush(self, upto: str | None = None) -> None:
        """Write every buffer up to and including table `upto` (all when None)."""
        for table in ORDER:
            if self.buffers[table]:
                self._write(table, self.buffers[table])
                self.buffers[table] = []
            if table == upto:
                break
        if self.pending >= COMMIT_EVERY:
            self.commit()

    def _write(self, table: str, rows: list[tuple]) -> None:
        cur = self.dbapi.cursor()
        if self.pg:
            with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        else:
            cur.executemany(self._sql[table], rows)
        cur.close()
        self.written[table] += len(rows)
        self.pending += len(rows)

    def commit(self, reopen: bool = True) -> None:
        self.dbapi.commit()
        self.pending = 0
        if reopen and not self.pg:
            self.dbapi.execute("BEGIN")

    def finish(self, progress: Progress | None) -> None:
        """Write what is left, rebuild dropped indexes, move sequences, refresh statistics."""
        self.flush()
        self.commit()
        if self.dropped:
            self.restore_indexes(progress)
        if progress:
            progress("analyze", 0, 1)
        cur = self.dbapi.cursor()
        if self.pg:
            for table in ORDER:
                if self.written[table]:
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                    )
            self.commit(reopen=False)
            for table in ORDER:
                if self.written[table]:
                    cur.execute(f"ANALYZE {table}")
        else:
            self.commit(reopen=False)
            cur.execute("PRAGMA analysis_limit=1000")
            cur.execute("ANALYZE")
        self.commit(reopen=False)
        cur.close()
        if progress:
            progress("analyze", 1, 1)

    def close(self) -> None:
        """Roll back what is unfinished, put indexes back and restore the connection."""
        try:
            self.dbapi.rollback()
            if self.dropped:  # failed half-way: the tables must keep their indexes
                self.restore_indexes(None)
                self.dbapi.commit()
            cur = self.dbapi.cursor()
            if self.pg:
                cur.execute("RESET synchronous_commit")
                cur.execute("RESET maintenance_work_mem")
                self.dbapi.commit()
            else:
                for name, value in self._pragmas.items():
                    cur.execute(f"PRAGMA {name}={value}")
            cur.close()
        finally:
            self.raw.close()


# --------------------------------------------------------------------------- helpers


def _weighted_pool(items: Sequence[tuple[object, float]], size: int) -> list:
    """A list of `size` items in proportion to their weights, for pool[int(random() * size)]."""
    total = sum(w for _, w in items)
    pool: list = []
    acc = 0.0
    for item, w in items:
        acc += w
        pool.extend([item] * (round(acc / total * size) - len(pool)))
    return pool


def _allocate(n: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split n into integer parts proportional to weights (largest remainder)."""
    k = len(weights)
    if k == 0:
        return []
    base = [minimum] * k if n >= minimum * k else [0] * k
    rest = n - sum(base)
    total = sum(weights) or 1.0
    shares = [rest * w / total for w in weights]
    parts = [int(s) for s in shares]
    left = rest - sum(parts)
    order = sorted(range(k), key=lambda i: (parts[i] - shares[i], i))
    for i in order[:left]:
        parts[i] += 1
    return [b + p for b, p in zip(base, parts, strict=True)]


def _sub_months(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _ascii(s: str) -> str:
    return "".join(c for c in search_key(s) if c.isalnum() or c == "-").strip("-")


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


@dataclass
class _Leaf:
    id: int
    code: str
    name: str
    country: str
    region_id: int
    cities: list[tuple[str, list[str]]]
    city_weights: list[float]
    rep_id: int = 0
    lang: str = "en"
    hcp_first: int = 0
    hcp_count: int = 0
    hco_first: int = 0
    hco_count: int = 0


class _People:
    """Pools of names and streets drawn once from Faker for one country."""

    def __init__(self, locale: str, seed: int) -> None:
        fake = Faker(locale)
        fake.seed_instance(seed)
        self.male = sorted({fake.first_name_male() for _ in range(400)})
        self.female = sorted({fake.first_name_female() for _ in range(400)})
        self.last = sorted({fake.last_name() for _ in range(1500)})
        self.streets = sorted({fake.street_name() for _ in range(400)})


# --------------------------------------------------------------------------- the run


def run(
    engine: Engine,
    *,
    hcps: int = 2000,
    reps: int = 20,
    months: int = 6,
    seed: int = 42,
    password: str | None = None,
    today: date | None = None,
    progress: Progress | None = None,
    activities_per_hcp_month: float = 4.0,
    batch_size: int = BATCH,
    rebuild_indexes: bool | None = None,
) -> SeedResult:
    """Load the demo data set into an empty, migrated database and return what was made.

    password: for every demo user; else $PARCOURS_DEMO_PASSWORD; else a random one.
    today: the day the data is built around (past calls before it, planned calls from it).
    progress: called as progress(stage, done, total) after every batch.
    activities_per_hcp_month: average touchpoints per HCP and month, all channels.
    rebuild_indexes: drop the secondary indexes (and, on PostgreSQL, the foreign keys) of the
    big tables during the load and create them again at the end, much faster for big loads;
    by default when more than 200,000 activities are expected.

    Raises ValueError when the database already has users. Batches are committed as they
    go: a load that fails half-way leaves partial data behind (start again on a new database).
    """
    if hcps < 1 or reps < 1 or months < 0:
        raise ValueError("hcps and reps must be at least 1, months at least 0")
    started = time.perf_counter()
    today = today or date.today()
    password = password or os.environ.get("PARCOURS_DEMO_PASSWORD") or secrets.token_urlsafe(12)

    with engine.connect() as conn:
        existing = conn.execute(text("SELECT COUNT(*) FROM users")).scalar_one()
        if existing:
            raise ValueError(
                f"the database already holds {existing} users; seed only an empty database"
            )
        next_ids = {
            t: (conn.execute(text(f"SELECT MAX(id) FROM {t}")).scalar() or 0) + 1 for t in ORDER
        }

    expected = hcps * activities_per_hcp_month * months
    if rebuild_indexes is None:
        rebuild_indexes = expected > 200_000
    w = _Writer(engine, batch_size, rebuild_indexes)
    try:
        w.begin()
        gen = _Generator(
            w,
            next_ids,
            seed=seed,
            today=today,
            hcps=hcps,
            reps=reps,
            months=months,
            per_month=activities_per_hcp_month,
            progress=progress,
        )
        gen.reference(hash_password(password))
        gen.accounts()
        gen.activities()
        gen.tasks()
        w.finish(progress)
    finally:
        w.close()

    counts = {
        "users": w.written["users"],
        "hcps": gen.n_hcps,
        "hcos": gen.n_hcos,
        "activities": w.written["activities"],
        "attendees": w.written["activity_attendees"],
        "tasks": w.written["tasks"],
        "territories": w.written["territories"],
        "target_list_entries": w.written["target_list_entries"],
    }
    with Session(engine) as session, audit.acting_as(None, "seed"):
        audit.note(
            session,
            "seed",
            "bulk",
            "create",
            "demo data loaded",
            after={**counts, "seed": seed, "months": months, "today": today},
        )
        session.commit()
    if progress:
        progress("done", 1, 1)
    return SeedResult(
        users=counts["users"],
        hcps=counts["hcps"],
        hcos=counts["hcos"],
        activities=counts["activities"],
        tasks=counts["tasks"],
        seconds=time.perf_counter() - started,
        password=password,
    )


class _Generator:
    def __init__(
        self,
        w: _Writer,
        next_ids: dict[str, int],
        *,
        seed: int,
        today: date,
        hcps: int,
        reps: int,
        months: int,
        per_month: float,
        progress: Progress | None,
    ) -> None:
        self.w = w
        self.ids = next_ids
        self.seed = seed
        self.rnd = random.Random(seed)
        self.today = today
        self.hcps = hcps
        self.reps = reps
        self.months = months
        self.per_month = per_month
        self.progress = progress
        self.start = _sub_months(today, months)
        # created_at of reference rows: a fixed moment before the period, so runs repeat
        self.epoch = datetime.combine(self.start - timedelta(days=30), datetime.min.time())
        self.epoch = self.epoch.replace(hour=7)
        self.n_hcps = 0
        self.n_hcos = 0
        self.people: dict[str, _People] = {}

    # ---- small helpers
    def next_id(self, table: str) -> int:
        i = self.ids[table]
        self.ids[table] = i + 1
        return i

    def ts(self, dt: datetime) -> str:
        return dt.strftime("%Y-%m-%d %H:%M:%S") + self.w.ts_suffix

    def people_for(self, country: str) -> _People:
        if country not in self.people:
            self.people[country] = _People(COUNTRIES[country][2], self.seed)
        return self.people[country]

    # ---- users, territories, products, segments, target lists
    def reference(self, password_hash: str) -> None:
        w, rnd = self.w, self.rnd
        self.segment_ids = []
        for code, name, tier, *_ in SEGMENTS:
            sid = self.next_id("segments")
            self.segment_ids.append(sid)
            w.add("segments", (sid, code, name, tier))
        self.product_ids = []
        for code, brand, area, _msgs in PRODUCTS:
            pid = self.next_id("products")
            self.product_ids.append(pid)
            w.add("products", (pid, code, brand, area, True))
        self.product_index = {p[0]: i for i, p in enumerate(PRODUCTS)}

        # territories: leaves spread over countries, then regions
        n_leaves = self.reps
        codes = list(COUNTRIES)
        if n_leaves < len(codes):
            codes = codes[:n_leaves]
            per_country = [1] * n_leaves
        else:
            per_country = _allocate(n_leaves, [COUNTRIES[c][4] for c in codes], minimum=1)
        self.leaves: list[_Leaf] = []
        self.regions: list[tuple[int, str, list[_Leaf]]] = []  # id, country, leaves
        for cc, n_c in zip(codes, per_country, strict=True):
            cname, lang, _loc, _tz, _w = COUNTRIES[cc]
            cid = self.next_id("territories")
            w.add("territories", (cid, cc, cname, "country", None, f"/{cid}/", cc))
            regions = REGIONS[cc]
            used = regions[: max(1, min(len(regions), math.ceil(n_c / 3)))]
            per_region = _allocate(n_c, [r[2] for r in used], minimum=1)
            for (rcode, rname, _rw, cities_spec), n_r in zip(used, per_region, strict=True):
                rid = self.next_id("territories")
                w.add(
                    "territories",
                    (rid, f"{cc}-{rcode}", rname, "region", cid, f"/{cid}/{rid}/", cc),
                )
                cities = [
                    (c.split("|")[0], c.split("|")[1].split()) for c in cities_spec.split(";")
                ]
                # the region's cities dealt out to its leaves, a leaf named after its first
                shares = [
                    cities[j::n_r] if n_r <= len(cities) else [cities[j % len(cities)]]
                    for j in range(n_r)
                ]
                firsts = [share[0][0] for share in shares]
                region_leaves = []
                for j, mine in enumerate(shares):
                    name = firsts[j]
                    if firsts.count(name) > 1:
                        name = f"{name} {firsts[: j + 1].count(name)}"
                    lid = self.next_id("territories")
                    code = f"{cc}-{rcode}-{j + 1:03d}"
                    w.add(
                        "territories",
                        (lid, code, name, "territory", rid, f"/{cid}/{rid}/{lid}/", cc),
                    )
                    leaf = _Leaf(
                        lid,
                        code,
                        name,
                        cc,
                        rid,
                        mine,
                        [3.0] + [1.0] * (len(mine) - 1),
                        lang="fr" if lang == "fr" else "en",
                    )
                    region_leaves.append(leaf)
                    self.leaves.append(leaf)
                self.regions.append((rid, cc, region_leaves))

        # users
        created = self.ts(self.epoch)

        def add_user(
            email: str,
            full_name: str,
            role: str,
            language: str,
            country: str | None,
            manager_id: int | None,
        ) -> int:
            uid = self.next_id("users")
            w.add(
                "users",
                (
                    uid,
                    email,
                    full_name,
                    role,
                    language,
                    country,
                    manager_id,
                    password_hash,
                    True,
                    0,
                    created,
                ),
            )
            return uid

        def person(country: str) -> str:
            p = self.people_for(country)
            first = rnd.choice(p.male if rnd.random() < 0.5 else p.female)
            return f"{first} {rnd.choice(p.last)}"

        self.admin_id = add_user(f"admin@{DEMO_DOMAIN}", person("FR"), "admin", "fr", "FR", None)
        managers = {}
        for i, (rid, cc, _leaves) in enumerate(self.regions):
            email = f"manager@{DEMO_DOMAIN}" if i == 0 else f"manager{i + 1}@{DEMO_DOMAIN}"
            lang = "en" if i == 0 or cc != "FR" else "fr"
            uid = add_user(email, person(cc), "manager", lang, cc, None)
            managers[rid] = uid
            w.add("user_territories", (self.next_id("user_territories"), uid, rid))
        self.rep_ids = []
        for i, leaf in enumerate(self.leaves):
            email = f"rep@{DEMO_DOMAIN}" if i == 0 else f"rep{i + 1}@{DEMO_DOMAIN}"
            uid = add_user(
                email,
                person(leaf.country),
                "rep",
                leaf.lang,
                leaf.country,
                managers[leaf.region_id],
            )
            leaf.rep_id = uid
            self.rep_ids.append(uid)
            w.add("user_territories", (self.next_id("user_territories"), uid, leaf.id))
        add_user(f"marketing@{DEMO_DOMAIN}", person("GB"), "marketing", "en", "FR", None)
        add_user(f"reviewer@{DEMO_DOMAIN}", person("FR"), "reviewer", "fr", "FR", None)

        # target lists: one per product per quarter overlapping the period
        self.cycles: list[list[int]] = []  # per cycle: target list id per product
        q = _quarter_start(self.start)
        while q <= self.today:
            nq = date(q.year + (q.month + 2) // 12, (q.month + 2) % 12 + 1, 1)
            ids = []
            for (_code, brand, *_), pid in zip(PRODUCTS, self.product_ids, strict=True):
                tid = self.next_id("target_lists")
                ids.append(tid)
                label = f"{brand} Q{(q.month - 1) // 3 + 1} {q.year}"
                w.add(
                    "target_lists",
                    (tid, label, pid, q.isoformat(), (nq - timedelta(days=1)).isoformat()),
                )
            self.cycles.append(ids)
            q = nq
        w.flush()

    # ---- HCOs and HCPs with addresses, identifiers, affiliations, alignments, targets
    def accounts(self) -> None:
        w, rnd = self.w, self.rnd
        r = rnd.random
        created = self.ts(self.epoch)
        seg_pool = _weighted_pool([(i, s[3]) for i, s in enumerate(SEGMENTS)], 1000)
        spec_pool = _weighted_pool([(s, s[2]) for s in SPECIALTIES], 1000)
        pref_pool = _weighted_pool(PREFERRED_CHANNELS, 100)
        hco_type_pool = _weighted_pool(list(HCO_TYPE_WEIGHTS.items()), 100)
        # product sets, interned: index -> tuple of product indexes
        self.product_sets: list[tuple[int, ...]] = []
        set_index: dict[tuple[int, ...], int] = {}
        total = self.hcps
        # per-HCP data the activity stage needs, indexed by id - first hcp id
        self.hcp_seg = array("b")
        self.hcp_ps = array("h")
        per_leaf = _allocate(self.hcps, [0.8 + 0.4 * r() for _ in self.leaves])
        leaves_by_country: dict[str, list[_Leaf]] = {}
        for leaf in self.leaves:
            leaves_by_country.setdefault(leaf.country, []).append(leaf)
        planned = [s[5] for s in SEGMENTS]
        done = 0
        if self.progress:
            self.progress("accounts", 0, total)
        # HCO ids first for every leaf, then HCPs, so a leaf's HCPs have consecutive ids
        for leaf, n in zip(self.leaves, per_leaf, strict=True):
            leaf.hcp_count = n
            leaf.hco_count = max(1, round(n / 10)) if n else 0
        hco_first = self.ids["accounts"]
        for leaf in self.leaves:
            leaf.hco_first = hco_first
            hco_first += leaf.hco_count
        self.ids["accounts"] = hco_first
        self.hcp_first_id = hco_first
        for leaf in self.leaves:
            leaf.hcp_first = hco_first
            hco_first += leaf.hcp_count
        self.ids["accounts"] = hco_first

        for leaf in self.leaves:
            cc = leaf.country
            p = self.people_for(cc)
            lang = COUNTRIES[cc][1]
            cum = list(accumulate(leaf.city_weights))
            doms = EMAIL_DOMAINS[cc]
            titles = TITLES[cc]
            siblings = [x for x in leaves_by_country[cc] if x is not leaf]

            # HCOs
            for k in range(leaf.hco_count):
                aid = leaf.hco_first + k
                city, codes = leaf.cities[bisect_right(cum, r() * cum[-1])]
                htype = hco_type_pool[int(r() * 100)]
                tmpl = HCO_TEMPLATES[cc][htype]
                name = tmpl[int(r() * len(tmpl))].format(city=city, name=rnd.choice(p.last))
                phones = json.dumps([self.phone(cc)])
                emails = json.dumps([f"contact@{_ascii(name)[:40]}.example"] if r() < 0.6 else [])
                w.add(
                    "accounts",
                    (
                        aid,
                        "hco",
                        None,
                        None,
                        None,
                        None,
                        None,
                        name,
                        htype,
                        emails,
                        phones,
                        lang,
                        None,
                        None,
                        cc,
                        search_key(name),
                        city,
                        search_key(city),
                        "active",
                        created,
                        created,
                    ),
                )
                self.address(aid, city, codes, cc, p)
                system, value = self.identifier(cc, "hco", aid)
                w.add(
                    "account_identifiers", (self.next_id("account_identifiers"), aid, system, value)
                )
                w.add("account_territories", (self.next_id("account_territories"), aid, leaf.id))
                self.n_hcos += 1

            # HCPs
            for k in range(leaf.hcp_count):
                aid = leaf.hcp_first + k
                city, codes = leaf.cities[bisect_right(cum, r() * cum[-1])]
                spec, prof, _w, prods, hospital = spec_pool[int(r() * 1000)]
                female = r() < 0.5
                first = (p.female if female else p.male)[
                    int(r() * len(p.female if female else p.male))
                ]
                last = p.last[int(r() * len(p.last))]
                if prof == "physician":
                    t = titles[1] if hospital and r() < 0.06 else titles[0]
                elif prof == "pharmacist" and cc in ("FR", "IT", "ES"):
                    t = titles[0]
                else:
                    t = titles[2]
                title = t[1] if female else t[0]
                seg = seg_pool[int(r() * 1000)]
                # detailed products: up to two of the specialty's
                if len(prods) > 2:
                    i = int(r() * len(prods))
                    j = (i + 1 + int(r() * (len(prods) - 1))) % len(prods)
                    prods = (prods[i], prods[j])
                pset = tuple(sorted(self.product_index[c] for c in prods))
                ps = set_index.get(pset)
                if ps is None:
                    ps = set_index[pset] = len(self.product_sets)
                    self.product_sets.append(pset)
                self.hcp_seg.append(seg)
                self.hcp_ps.append(ps)
                fa, la = _ascii(first), _ascii(last)
                x = r()
                emails = (
                    []
                    if x < 0.08
                    else [f"{fa}.{la}@{doms[int(r() * 3)]}"]
                    if x < 0.85
                    else [f"{fa}.{la}@{doms[0]}", f"{fa[0]}{la}{aid % 97}@{doms[1]}"]
                )
                phones = [self.phone(cc)] if r() < 0.9 else []
                if r() < 0.3:
                    phones.append(self.phone(cc, mobile=True))
                w.add(
                    "accounts",
                    (
                        aid,
                        "hcp",
                        title,
                        first,
                        last,
                        spec,
                        prof,
                        None,
                        None,
                        json.dumps(emails, ensure_ascii=False),
                        json.dumps(phones),
                        lang,
                        pref_pool[int(r() * 100)],
                        self.segment_ids[seg],
                        cc,
                        search_key(last, first),
                        city,
                        search_key(city),
                        "active",
                        created,
                        created,
                    ),
                )
                self.address(aid, city, codes, cc, p)
                system, value = self.identifier(cc, "hcp", aid)
                w.add(
                    "account_identifiers", (self.next_id("account_identifiers"), aid, system, value)
                )
                w.add("account_territories", (self.next_id("account_territories"), aid, leaf.id))
                if siblings and r() < 0.03:
                    other = siblings[int(r() * len(siblings))]
                    w.add(
                        "account_territories", (self.next_id("account_territories"), aid, other.id)
                    )
                if leaf.hco_count:
                    roles = AFFILIATION_ROLES[prof]
                    h1 = leaf.hco_first + int(r() * leaf.hco_count)
                    w.add(
                        "affiliations",
                        (self.next_id("affiliations"), aid, h1, roles[int(r() * len(roles))], True),
                    )
                    if leaf.hco_count > 1 and r() < 0.25:
                        h2 = (
                            leaf.hco_first
                            + (h1 - leaf.hco_first + 1 + int(r() * (leaf.hco_count - 1)))
                            % leaf.hco_count
                        )
                        w.add(
                            "affiliations",
                            (
                                self.next_id("affiliations"),
                                aid,
                                h2,
                                roles[int(r() * len(roles))],
                                False,
                            ),
                        )
                if pset and r() < TARGET_SHARE[seg]:
                    for cycle in self.cycles:
                        for pi in pset:
                            w.add(
                                "target_list_entries",
                                (self.next_id("target_list_entries"), cycle[pi], aid, planned[seg]),
                            )
                self.n_hcps += 1
                done += 1
                if self.progress and done % 5000 == 0:
                    self.progress("accounts", done, total)
        w.flush("target_list_entries")
        if self.progress:
            self.progress("accounts", done, total)

    def address(self, aid: int, city: str, codes: list[str], cc: str, p: _People) -> None:
        r = self.rnd.random
        n = 1 + int(r() * 120)
        street = p.streets[int(r() * len(p.streets))]
        line1 = (
            f"{street} {n}"
            if cc == "DE"
            else f"{street}, {n}"
            if cc in ("IT", "ES")
            else f"{n} {street}"
        )
        self.w.add(
            "addresses",
            (
                self.next_id("addresses"),
                aid,
                line1,
                None,
                codes[int(r() * len(codes))],
                city,
                cc,
                True,
            ),
        )

    def phone(self, cc: str, mobile: bool = False) -> str:
        """Numbers in the ranges reserved for fiction where the country has them."""
        n = int(self.rnd.random() * 1000)
        if cc == "FR":
            return (
                f"+33 6 39 98 {n // 100:02d} {n % 100:02d}"
                if mobile
                else f"+33 1 99 00 {n // 100:02d} {n % 100:02d}"
            )
        if cc == "GB":
            return f"+44 7700 900{n:03d}" if mobile else f"+44 20 7946 0{n:03d}"
        if cc == "DE":
            return f"+49 30 23125{n:03d}"
        if cc == "IT":
            return f"+39 3{n % 10}0 555 {n:04d}" if mobile else f"+39 02 555 {n:04d}"
        return f"+34 6{n % 10}0 555 {n:03d}" if mobile else f"+34 91 555 {n:04d}"

    @staticmethod
    def identifier(cc: str, kind: str, aid: int) -> tuple[str, str]:
        """Unique, random-looking numbers: an affine bijection of the account id."""
        v = (aid * 7_654_321 + 1_234_567) % 1_000_000_000
        if kind == "hcp":
            return ("rpps", f"10{v:09d}") if cc == "FR" else ("npi", f"1{v:09d}")
        return ("finess", f"{v:09d}") if cc == "FR" else ("gln", f"4000{v:09d}")

    # ---- activities
    def _time_tables(self) -> tuple[list[str], dict[str, list[int]], list[str]]:
        """Weekday prefixes 'YYYY-MM-DD ' of the period, UTC offsets per country, HH:MM texts."""
        days: list[date] = []
        d = self.start
        while d < self.today:
            if d.weekday() < 5:
                days.append(d)
            d += timedelta(days=1)
        prefixes = [d.isoformat() + " " for d in days]
        offsets = {cc: [self.utc_offset(cc, d) for d in days] for cc in COUNTRIES}
        suffix = ":00" + self.w.ts_suffix
        times = [f"{m // 60:02d}:{m % 60:02d}{suffix}" for m in range(24 * 60)]
        return prefixes, offsets, times

    @staticmethod
    def utc_offset(cc: str, d: date) -> int:
        tz = ZoneInfo(COUNTRIES[cc][3])
        off = datetime(d.year, d.month, d.day, 12, tzinfo=tz).utcoffset()
        return int(off.total_seconds() // 60) if off else 0

    def _content(self) -> dict[str, list[list[tuple[str, str, list[str | None]]]]]:
        """Per language, per product set: variants of (product_ids, key_messages, subjects)."""
        rnd = self.rnd
        out: dict[str, list] = {}
        channels = [c[0] for c in CHANNEL_MIX]
        for lang in ("fr", "en"):
            per_set = []
            for pset in self.product_sets:
                variants = []
                choices = list(pset) or [None]
                for _ in range(12):
                    pi = choices[int(rnd.random() * len(choices))]
                    if pi is None:  # no product detailed: institutional contact
                        variants.append(("[]", "[]", list(GENERIC_SUBJECTS[lang])))
                        continue
                    pids = [self.product_ids[pi]]
                    if len(pset) > 1 and rnd.random() < 0.25:
                        pids.append(self.product_ids[[x for x in pset if x != pi][0]])
                    msgs = list(PRODUCTS[pi][3])
                    rnd.shuffle(msgs)
                    msgs = msgs[: 1 + int(rnd.random() * 3)]
                    brand = PRODUCTS[pi][1]
                    subj = []
                    for ch in channels:
                        tmpl = SUBJECTS[lang][ch]
                        subj.append(tmpl[int(rnd.random() * len(tmpl))].format(p=brand))
                    variants.append((json.dumps(pids), json.dumps(msgs, ensure_ascii=False), subj))
                per_set.append(variants)
            out[lang] = per_set
        return out

    def _combos(self, lang: str, size: int = 4096) -> list[tuple]:
        """Pre-drawn (channel index, channel, kind, duration, outcome, notes, local minute,
        minutes from start to submission, group) tuples in the channel mix proportions."""
        rnd = self.rnd
        r = rnd.random
        ch_pool = _weighted_pool([(i, c[1]) for i, c in enumerate(CHANNEL_MIX)], size)
        outcome_pool = _weighted_pool(CALL_OUTCOMES, 100)
        notes = NOTES[lang]
        combos = []
        for ci in ch_pool:
            ch, _share, kinds, durs, (lo, hi), is_call = CHANNEL_MIX[ci]
            kind_pool = _weighted_pool(kinds, 100)
            kind = kind_pool[int(r() * 100)]
            dur = durs[int(r() * len(durs))]
            local = lo + 5 * int(r() * ((hi - lo) // 5))
            outcome = outcome_pool[int(r() * 100)] if is_call else None
            note = notes[int(r() * len(notes))] if is_call and r() < 0.3 else None
            delay = (dur or 0) + (5 + int(r() * 180) if is_call else 0)
            group = ch in ("field_visit", "event", "webinar") and r() < GROUP_SHARE * 100 / 51
            if group and ch == "field_visit":
                kind = "group_meeting"
            combos.append((ci, ch, kind, dur, outcome, note, local, delay, group))
        return combos

    def activities(self) -> None:
        w, rnd = self.w, self.rnd
        r = rnd.random
        prefixes, offsets, times = self._time_tables()
        nd = len(prefixes)
        content = self.content = self._content()
        combos = {lang: self._combos(lang) for lang in ("fr", "en")}
        nc = len(combos["fr"])
        seg_weight = [s[4] for s in SEGMENTS]
        mean_w = sum(s[3] * s[4] for s in SEGMENTS)
        mu = [self.per_month * self.months * sw / mean_w for sw in seg_weight]
        total = int(self.hcps * self.per_month * self.months)
        if self.progress:
            self.progress("activities", 0, total)
        acts = w.buffers["activities"]
        atts = w.buffers["activity_attendees"]
        batch = w.batch
        aid = self.ids["activities"]
        tid = self.ids["activity_attendees"]
        done = 0
        first_hcp = self.hcp_first_id
        seg_arr, ps_arr = self.hcp_seg, self.hcp_ps
        for leaf in self.leaves:
            owner = leaf.rep_id
            offs = offsets[leaf.country]
            cmb = combos[leaf.lang]
            cont = content[leaf.lang]
            lo, n_leaf = leaf.hcp_first, leaf.hcp_count
            for hid in range(lo, lo + n_leaf) if nd else ():
                k = hid - first_hcp
                variants = cont[ps_arr[k]]
                nv = len(variants)
                n = int(mu[seg_arr[k]] * (0.4 + 1.2 * r()) + r())
                for _ in range(n):
                    ci, ch, kind, dur, outcome, note, local, delay, group = cmb[int(r() * nc)]
                    di = int(r() * nd)
                    v = variants[int(r() * nv)]
                    m = local - offs[di]
                    day = prefixes[di]
                    start = day + times[m]
                    ms = m + delay
                    sub = day + times[ms if ms < 1440 else 1439]
                    acts.append(
                        (
                            aid,
                            ch,
                            kind,
                            "submitted",
                            owner,
                            hid,
                            start,
                            dur,
                            v[2][ci],
                            outcome,
                            note,
                            v[0],
                            v[1],
                            sub,
                            start,
                            sub,
                        )
                    )
                    atts.append((tid, aid, hid, start, ch))
                    tid += 1
                    if group and n_leaf > 2:
                        extra = min(1 + int(r() * 4), n_leaf - 1)
                        base = int(r() * n_leaf)
                        for e in range(extra):
                            other = lo + (base + e) % n_leaf
                            if other != hid:
                                atts.append((tid, aid, other, start, ch))
                                tid += 1
                    aid += 1
                if len(acts) >= batch:
                    done += len(acts)
                    w.flush("activity_attendees")
                    acts = w.buffers["activities"]
                    atts = w.buffers["activity_attendees"]
                    if self.progress:
                        self.progress("activities", done, max(total, done))
        self.ids["activities"] = aid
        self.ids["activity_attendees"] = tid
        self.planned()
        w.flush("activity_attendees")
        if self.progress:
            self.progress("activities", w.written["activities"], w.written["activities"])

    def _pick_hcp(self, leaf: _Leaf, best: bool) -> int | None:
        if not leaf.hcp_count:
            return None
        r = self.rnd.random
        for _ in range(20):
            hid = leaf.hcp_first + int(r() * leaf.hcp_count)
            if not best or self.hcp_seg[hid - self.hcp_first_id] <= 1:
                return hid
        return hid

    def planned(self) -> None:
        """Each rep: planned calls today and over the next working days."""
        w, rnd = self.w, self.rnd
        r = rnd.random
        suffix = self.w.ts_suffix
        today_slots = (9 * 60, 10 * 60 + 30, 11 * 60 + 45, 14 * 60, 15 * 60 + 30, 17 * 60)
        later_slots = (9 * 60 + 30, 11 * 60, 14 * 60 + 30, 16 * 60)
        self.todays: dict[int, list[tuple[int, int]]] = {}  # rep -> [(activity id, account)]
        created = self.ts(
            datetime.combine(self.today - timedelta(days=3), datetime.min.time()).replace(hour=17)
        )
        for leaf in self.leaves:
            if not leaf.hcp_count:
                continue
            days = [(self.today, today_slots[: 4 + int(r() * 3)])]
            d = self.today
            while len(days) < 8:
                d += timedelta(days=1)
                if d.weekday() < 5:
                    days.append((d, later_slots[: 2 + int(r() * 3)]))
            self.todays[leaf.rep_id] = []
            for day, slots in days:
                off = self.utc_offset(leaf.country, day)
                for i, local in enumerate(slots):
                    hid = self._pick_hcp(leaf, best=True)
                    ch = "remote_detailing" if i == 1 else "field_visit"
                    dur = 15 if ch == "remote_detailing" else 30
                    m = local - off
                    start = f"{day.isoformat()} {m // 60:02d}:{m % 60:02d}:00{suffix}"
                    variants = self.content[leaf.lang][self.hcp_ps[hid - self.hcp_first_id]]
                    pids, msgs, subjects = variants[int(r() * len(variants))]
                    ci = 0 if ch == "field_visit" else 2
                    aid = self.next_id("activities")
                    w.add(
                        "activities",
                        (
                            aid,
                            ch,
                            "detail",
                            "planned",
                            leaf.rep_id,
                            hid,
                            start,
                            dur,
                            subjects[ci],
                            None,
                            None,
                            pids,
                            msgs,
                            None,
                            created,
                            created,
                        ),
                    )
                    w.add(
                        "activity_attendees",
                        (self.next_id("activity_attendees"), aid, hid, start, ch),
                    )
                    if day == self.today:
                        self.todays[leaf.rep_id].append((aid, hid))

    # ---- tasks
    def tasks(self) -> None:
        w, rnd = self.w, self.rnd
        r = rnd.random
        for leaf in self.leaves:
            if not leaf.hcp_count:
                continue
            titles = TASKS[leaf.lang]
            todays = self.todays.get(leaf.rep_id, [])
            for i in range(10):
                hid = self._pick_hcp(leaf, best=False)
                pset = self.product_sets[self.hcp_ps[hid - self.hcp_first_id]]
                brand = PRODUCTS[pset[int(r() * len(pset))]][1] if pset else "—"
                title = titles[int(r() * len(titles))].format(p=brand).replace(" —", "")
                activity_id = None
                if i < 2 and todays:
                    activity_id, hid = todays[i % len(todays)]
                if i < 7:  # open, due around today
                    due = self.today + timedelta(days=int(r() * 15) - 4)
                    created = self.today - timedelta(days=5 + int(r() * 10))
                    row = (
                        self.next_id("tasks"),
                        leaf.rep_id,
                        hid,
                        activity_id,
                        title,
                        due.isoformat(),
                        "open",
                        self.ts(datetime.combine(created, datetime.min.time()).replace(hour=16)),
                        None,
                    )
                else:  # done last weeks
                    due = self.today - timedelta(days=3 + int(r() * 25))
                    created = due - timedelta(days=7)
                    done_at = datetime.combine(due, datetime.min.time()).replace(hour=15)
                    row = (
                        self.next_id("tasks"),
                        leaf.rep_id,
                        hid,
                        None,
                        title,
                        due.isoformat(),
                        "done",
                        self.ts(datetime.combine(created, datetime.min.time()).replace(hour=16)),
                        self.ts(done_at),
                    )
                w.add("tasks", row)
        w.flush()
