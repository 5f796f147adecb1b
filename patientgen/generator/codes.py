"""THE one code table: every SNOMED CT, LOINC and local code the project emits, with its display.

Nothing outside these tables may appear in any output (tests/test_codes.py proves it). Every code
was checked against public material, never invented:

- [D] /work/shared/design/domain.md, "Codes" (checked there against public implementation guides).
- [VA] the VA vitals body-site ConceptMap (FHIR Shorthand, ConceptMap VF-VitalsBodySite,
  http://va.gov/fhir/ConceptMap/VF-VitalsBodySite): SNOMED body structures with their FSNs.
- [IG] public FHIR implementation guides / examples found through code search, where the same code
  appears with the same display in several independent projects (noted per code).

Known wrong pairs seen in another generator must never be emitted: see `FORBIDDEN_CODES`.
There is no SNOMED concept for "blast injury": the resulting injuries are coded, plus the mechanism.
"""

from __future__ import annotations

SNOMED_SYSTEM = "http://snomed.info/sct"
LOINC_SYSTEM = "http://loinc.org"

#: Local CodeSystem for NATO triage categories (no standard code system exists, domain.md).
TRIAGE_SYSTEM = "urn:patientgen:fhir:CodeSystem:nato-triage"
TRIAGE: dict[str, str] = {
    "T1": "Immediate",
    "T2": "Delayed",
    "T3": "Minimal",
    "T4": "Expectant",
}

#: Local CodeSystem for the AVPU scale (value of LOINC 67775-7 level of responsiveness).
AVPU_SYSTEM = "urn:patientgen:fhir:CodeSystem:avpu"
AVPU: dict[str, str] = {
    "A": "Alert",
    "V": "Responds to voice",
    "P": "Responds to pain",
    "U": "Unresponsive",
}

#: Prefix of the per-nation identifier system of service numbers: f"{prefix}{ISO alpha-3}".
SERVICE_NUMBER_SYSTEM_PREFIX = "urn:patientgen:service-number:"


def service_number_system(nation: str) -> str:
    """The identifier system of a nation's service numbers, e.g. urn:...:service-number:DEU."""
    return SERVICE_NUMBER_SYSTEM_PREFIX + nation


# --- SNOMED CT: conditions (clinical findings / disorders) -------------------------------------
CONDITIONS: dict[str, str] = {
    # battle and non-battle injuries [D]
    "283545005": "Gunshot wound",
    "262574004": "Bullet wound",
    "262595009": "Traumatic amputation",
    "125605004": "Fracture of bone",
    "397181002": "Open fracture",
    "423125000": "Closed fracture of bone",
    "125666000": "Burn",
    "403190006": "First degree burn",
    "403191005": "Second degree burn",
    "403192003": "Third degree burn",
    "127295002": "Traumatic brain injury",
    "110030002": "Concussion injury of brain",
    "233645004": "Tension pneumothorax",
    "31892009": "Hemothorax",
    "125665001": "Crushing injury",
    "125643001": "Open wound",
    "312608009": "Laceration",
    "125667009": "Contusion",
    "48149007": "Exsanguination",
    "27942005": "Shock",
    "125670008": "Foreign body",
    "1734006": "Fracture of vertebral column with spinal cord injury",
    # non-battle injuries [IG]
    "44465007": "Sprain of ankle",  # several IGs/examples ("Sprain of ankle", ICD-10 S93.4)
    "279039007": "Low back pain",  # several examples ("Low back pain (finding)")
    # disease [D] + [IG]
    "47505003": "Posttraumatic stress disorder",  # [D]; not emitted in theatre (coherence.py)
    # acute stress reaction (ICD-10 F43.0): the in-theatre diagnosis; [IG] several independent
    # code lists map 67195008 to "Acute stress disorder" / F43.0
    "67195008": "Acute stress disorder",
    "54150009": "Upper respiratory infection",  # several examples (ICD-10 J06.9 maps)
    "6142004": "Influenza",  # napkon-pediatrics IG ("Influenza (disorder)"), Synthea tests
    "233604007": "Pneumonia",  # several examples (ICD-10 J18.9 maps)
    "25374005": "Gastroenteritis",  # several examples (ICD-10 A09 maps)
    "34095006": "Dehydration",  # several examples and a ConceptMap target ("Dehydration")
    "128045006": "Cellulitis",  # several examples ("Cellulitis (disorder)")
    "68566005": "Urinary tract infectious disease",  # examples (ICD-10 N39.0 maps)
    "35489007": "Depressive disorder",  # several examples ("Depressive disorder (disorder)")
    "197480006": "Anxiety disorder",  # several examples ("Anxiety disorder")
}

# --- SNOMED CT: procedures ----------------------------------------------------------------------
PROCEDURES: dict[str, str] = {
    # [D]
    "20655006": "Application of tourniquet",
    "51241000": "Control of hemorrhage",
    "26906007": "Application of pressure dressing",
    "264957007": "Insertion of pleural tube drain",
    "112798008": "Insertion of endotracheal tube",
    "116859006": "Transfusion of blood product",
    "79321009": "Application of splint",
    "74770008": "Exploratory laparotomy",
    "36777000": "Debridement",
    "225390008": "Triage",
    "288086009": "Suture of open wound",
    # [IG]
    "57485005": "Oxygen therapy",  # several IGs ("Oxygen therapy (procedure)")
    "281789004": "Antibiotic therapy",  # several IGs ("Antibiotic therapy (procedure)")
    "81723002": "Amputation",  # IG ValueSets ("Amputation (procedure)")
    "25353009": "Craniotomy",  # public SNOMED mapping ("Craniotomy (25353009)")
    "77477000": "Computerized axial tomography",  # several examples ("Computerized tomography")
    "225358003": "Wound care",  # several IGs ("Wound care")
    "52052004": "Rehabilitation therapy",  # IG ValueSets ("Rehabilitation therapy")
    "281800008": "Intravenous fluid replacement",  # IGs ("Intravenous fluid replacement
    # (procedure)"; an oncology IG's "Hydration")
    "278414003": "Pain management",  # IGs ("Pain management (procedure)")
    "168537006": "Plain X-ray",  # IG ValueSets ("Plain X-ray (procedure)")
    # a trauma-registry IG's breathing intervention (FSH: "Needle chest decompression for tension
    # pneumothorax (procedure)"); a public terminology browser: international core module, has
    # focus tension pneumothorax
    "1290622004": "Needle chest decompression for tension pneumothorax",
    # a trauma-registry IG's cervical spine interventions (FSH ValueSet: "Cervical spine
    # immobilization"), a clinical-data mapping table and a procedure-name table of other
    # public projects (each "Cervical Spine Immobilization")
    "398041008": "Cervical spine immobilization",
    # several IGs (a German research IG's FSH: "Dressing of wound"; others' examples)
    "182531007": "Dressing of wound",
    # HL7's International Patient Summary IG, its value set of the SNOMED IPS free set
    # (procedures, SNOMED CT 2022-07-31): "Psychiatric interview and evaluation"
    "10197000": "Psychiatric interview and evaluation",
    # the same value set: the reduction of a closed and of an open fracture
    "122470005": "Reduction of closed fracture",
    "122471009": "Reduction of open fracture",
    # the same value set: an operation on the globe (an open globe's repair)
    "373353005": "Surgical procedure on eye proper",
}

# --- SNOMED CT: mechanisms (events) -------------------------------------------------------------
MECHANISMS: dict[str, str] = {
    "242777003": "Accident caused by explosion",  # [D]
    "218081007": "Accident caused by firearm missile",  # [D]
    "217082002": "Accidental fall",  # several examples ("Accidental fall (event)")
    "418399005": "Motor vehicle accident",  # several IGs ("Motor vehicle accident (event)")
}

#: Mechanism name (Patient.mechanism) -> SNOMED event code, where a concept fits; others: None.
MECHANISM_CODES: dict[str, str] = {
    "explosive": "242777003",
    "gunshot": "218081007",
    "fall": "217082002",
    "vehicle": "418399005",
}

# --- SNOMED CT: body structures [VA] ------------------------------------------------------------
#: Body region key (Condition.region) -> (SNOMED body structure code, display).
BODY_SITES: dict[str, tuple[str, str]] = {
    "head": ("69536005", "Head structure"),  # [VA]
    "face": ("89545001", "Face structure"),  # DICOM CID 4031 / several IGs ("Face")
    "eye": ("81745001", "Eye structure"),  # several IGs (bodySite "Eye structure")
    "ear": ("117590005", "Ear structure"),  # several IGs ("Ear structure (body structure)")
    "neck": ("45048000", "Neck structure"),  # [VA]
    "thorax": ("51185008", "Thoracic structure"),  # several IGs ("Thoracic structure")
    "abdomen": ("818983003", "Abdomen"),  # [VA] "Abdomen (body structure)"
    "pelvis": ("12921003", "Pelvic structure"),  # several IGs ("Pelvic structure")
    "spine": ("421060004", "Structure of vertebral column"),  # several IGs
    "left_upper_limb": ("80768000", "Structure of left upper limb"),  # [VA]
    "right_upper_limb": ("6921000", "Structure of right upper limb"),  # [VA]
    "left_lower_limb": ("32153003", "Structure of left lower limb"),  # [VA]
    "right_lower_limb": ("62175007", "Structure of right lower limb"),  # [VA]
}

# --- SNOMED CT: severity (qualifier values) ------------------------------------------------------
#: Condition severity (generator.patient.Severity) -> (SNOMED CT code, display). Mild, moderate and
#: severe are the three codes of FHIR R4's condition-severity value set; "critical" has no code
#: there and takes "Life threatening severity", used beside them in several public IGs and
#: severity value sets (e.g. allergy and adverse-event severity lists).
SEVERITIES: dict[str, tuple[str, str]] = {
    "mild": ("255604002", "Mild"),
    "moderate": ("6736007", "Moderate"),
    "severe": ("24484000", "Severe"),
    "critical": ("442452003", "Life threatening severity"),
}

#: Every SNOMED CT code the project may emit -> display.
SNOMED: dict[str, str] = {
    **CONDITIONS,
    **PROCEDURES,
    **MECHANISMS,
    **{code: display for code, display in SEVERITIES.values()},
    **{code: display for code, display in BODY_SITES.values()},
}

# --- LOINC: observations (FHIR R4 vital-signs value set) [D] -------------------------------------
LOINC: dict[str, str] = {
    "85353-1": "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel",
    "9279-1": "Respiratory rate",
    "8867-4": "Heart rate",
    "59408-5": "Oxygen saturation in Arterial blood by Pulse oximetry",
    "8310-5": "Body temperature",
    "85354-9": "Blood pressure panel with all children optional",
    "8480-6": "Systolic blood pressure",
    "8462-4": "Diastolic blood pressure",
    "9269-2": "Glasgow coma score total",
    "67775-7": "Level of responsiveness",
    # FHIR output (formats/fhir.py)
    # R4 oxygen-saturation profile: its required code, written beside 59408-5 (domain.md).
    "2708-6": "Oxygen saturation in Arterial blood",
    # US Core's pain severity code (0-10 numeric rating scale), where 38208-5 was used before.
    "72514-3": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
    # The triage category is an assessment, not a procedure: LOINC's acuity assessment, which
    # emergency-care IGs use for the triage level (e.g. German AKTIN, CTAS examples).
    "11283-9": "Acuity assessment at First encounter",
}

#: Vitals field (generator.patient.Vitals) -> LOINC code.
VITALS_LOINC: dict[str, str] = {
    "heart_rate": "8867-4",
    "respiratory_rate": "9279-1",
    "systolic_bp": "8480-6",
    "diastolic_bp": "8462-4",
    "spo2": "59408-5",
    "temperature_c": "8310-5",
    "gcs": "9269-2",
    "avpu": "67775-7",
    "pain": "72514-3",
}

#: Known wrong pairs seen in another generator: these codes must never be emitted (domain.md).
FORBIDDEN_CODES: dict[str, str] = {
    "125596004": "Injury of elbow (was mislabelled as an explosive injury)",
    "7200002": "Alcoholism (was mislabelled as a burn)",
    "284551006": "Laceration of foot (was mislabelled)",
}

assert not set(FORBIDDEN_CODES) & set(SNOMED), "a forbidden code is in the table"
