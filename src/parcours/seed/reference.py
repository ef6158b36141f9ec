"""Static reference data: countries, regions, segments, products, specialties, texts, channels."""

from __future__ import annotations

DEMO_DOMAIN = "parcours.demo"


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
    ("survey", 1, (("sent", 60), ("completed", 40)), (5, 10), (7 * 60, 21 * 60), False),
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
