"""What happened to a casualty: mechanism, injuries (or illness), body regions and their severity.

Figures (see /work/shared/design/domain.md):
- Battle mechanism: explosive 78%, gunshot 18%, other 4% (Owens et al., J Trauma 2008;64:295-9),
  shifted by the kind of fighting (artillery and drones: more explosive; urban: more gunshot).
- Battle wound regions (Owens): extremities 54%, head and neck about 30% (head 8, eyes 6, ears 3,
  face 10, neck 3), thorax 6%, abdomen 11%; several wounds per casualty are common (polytrauma).
- Non-battle injuries (Hauret et al., Am J Prev Med 2010): sports/training 19-21%, falls 18%,
  vehicles 12-16% of air evacuations; the shares below are of non-battle injuries only.

Each injury gets an AIS-like severity (1 minor .. 6 maximal) drawn from a range that depends on the
injury and the region; the injury severity score (ISS: sum of squares of the three highest) drives
triage, shock, and mortality. Conditions are chosen from tables keyed by (mechanism, region), so a
code only appears where it makes sense: amputations only on limbs, pneumothorax only in the thorax,
burns from explosions, fire and accidents, never "amputation of the head".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from patientgen.generator.codes import BODY_SITES, CONDITIONS
from patientgen.generator.patient import Severity
from patientgen.generator.rng import cumulative

# Injury flags (bit mask)
BLEED = 1  # external or internal haemorrhage
HEAD = 2  # brain / head injury: lowers GCS
CHEST = 4  # pneumothorax / haemothorax: needs a chest drain
FRACTURE = 8
AMPUTATION = 16
BURN = 32
PENETRATING = 64
WOUND = 128  # open wound that needs debridement / wound care
SPINE = 256
MINOR_CUT = 512  # laceration: suture
INFECTION = 1024  # illness: fever, antibiotics
RESPIRATORY = 2048
PSYCH = 4096
GI = 8192
VIRAL = 16384  # an infection of a virus: no antibiotics
# Heals within days when at most moderate (AIS 2): the theatre's evacuation policy holds a
# casualty who can return to duty within it (AJP-4.10): treated in theatre, never flown home;
# one whose every condition is so returns to duty within 72 hours, from Role 1 or Role 2's
# holding, never admitted to Role 3 (build._path).
HEALS = 32768
# An injury of the eye: shielded and shipped to an eye surgeon (never pressed, dressed nor
# operated on before Role 3, so neither BLEED nor WOUND); a severe one goes home.
EYE = 65536

LIMBS = ("left_upper_limb", "right_upper_limb", "left_lower_limb", "right_lower_limb")
LOWER_LIMBS = ("left_lower_limb", "right_lower_limb")

#: Battle wound regions (Owens 2008), in percent of wounds. Pelvis is counted with the abdomen.
BATTLE_REGIONS: dict[str, float] = {
    "head": 8, "eye": 6, "ear": 3, "face": 10, "neck": 3, "thorax": 6, "abdomen": 9, "pelvis": 2,
    "left_upper_limb": 11, "right_upper_limb": 11, "left_lower_limb": 16, "right_lower_limb": 16,
}  # fmt: skip

#: Region key -> region group used by the condition tables.
GROUP = {
    "head": "head", "eye": "eye", "ear": "ear", "face": "face", "neck": "neck",
    "thorax": "thorax", "abdomen": "abdomen", "pelvis": "abdomen", "spine": "spine",
    **{limb: "limb" for limb in LIMBS},
}  # fmt: skip

#: Battle mechanism mix (explosive, gunshot, burn, crush, blunt) per kind of fighting.
BATTLE_MECHANISMS = ("explosive", "gunshot", "burn", "crush", "blunt")
WARFARE_MECHANISMS: dict[str, tuple[float, ...]] = {
    "conventional": (0.70, 0.26, 0.015, 0.01, 0.015),
    "artillery": (0.92, 0.04, 0.015, 0.015, 0.01),
    "urban": (0.60, 0.32, 0.02, 0.04, 0.02),  # building collapse: crush
    "guerrilla": (0.72, 0.24, 0.01, 0.01, 0.02),  # IEDs and ambushes
    "drone": (0.94, 0.03, 0.015, 0.005, 0.01),
    "naval": (0.60, 0.05, 0.20, 0.05, 0.10),  # shipboard fires
    "cbrn": (0.50, 0.05, 0.30, 0.05, 0.10),  # burns stand for chemical/thermal injury
    "peacekeeping": (0.55, 0.35, 0.02, 0.03, 0.05),
}

#: Non-battle injury mechanisms (Hauret 2010 proportions, rescaled to non-battle injuries).
NBI_MECHANISMS: dict[str, float] = {
    "sports_training": 0.30, "fall": 0.25, "vehicle": 0.17, "overexertion": 0.13,
    "crush": 0.08, "burn": 0.04, "blunt": 0.03,
}  # fmt: skip

Template = tuple[str, str, int, int, int]  # (code, display, ais low, ais high, flags)


def _t(code: str, lo: int, hi: int, flags: int = 0) -> Template:
    return (code, CONDITIONS[code], lo, hi, flags)


# common templates
OPEN_WOUND_LIMB = _t("125643001", 1, 3, BLEED | WOUND | PENETRATING)
OPEN_WOUND_HEAD = _t("125643001", 2, 4, BLEED | WOUND | PENETRATING | HEAD)
OPEN_WOUND_TRUNK = _t("125643001", 2, 4, BLEED | WOUND | PENETRATING)
OPEN_WOUND_FACE = _t("125643001", 1, 2, BLEED | WOUND | PENETRATING)
FRAGMENT_LIMB = _t("125670008", 1, 3, BLEED | WOUND | PENETRATING)
FRAGMENT_HEAD = _t("125670008", 2, 5, BLEED | WOUND | PENETRATING | HEAD)
FRAGMENT_TRUNK = _t("125670008", 2, 4, BLEED | WOUND | PENETRATING)
FRAGMENT_FACE = _t("125670008", 1, 2, WOUND | PENETRATING)
FRAGMENT_EYE = _t("125670008", 2, 3, PENETRATING | EYE)
GSW_EYE = _t("283545005", 2, 3, PENETRATING | EYE)
LACERATION_EYE = _t("312608009", 1, 2, MINOR_CUT | HEALS | EYE)
BURN_EYE = _t("403191005", 2, 3, BURN | EYE)
LACERATION = _t("312608009", 1, 2, BLEED | MINOR_CUT | HEALS)
CONTUSION = _t("125667009", 1, 2, HEALS)
CONTUSION_ABDOMEN = _t("125667009", 2, 3, BLEED | HEALS)
FRACTURE_FACE_RIB = _t("125605004", 2, 3, FRACTURE)
OPEN_FRACTURE = _t("397181002", 2, 3, BLEED | WOUND | FRACTURE | PENETRATING)
CLOSED_FRACTURE = _t("423125000", 2, 3, FRACTURE)
AMPUTATION_LIMB = _t("262595009", 3, 5, BLEED | WOUND | AMPUTATION)
BURN_1 = _t("403190006", 1, 1, BURN | HEALS)
BURN_2 = _t("403191005", 2, 3, BURN | WOUND)
BURN_3 = _t("403192003", 3, 5, BURN | WOUND)
CRUSH = _t("125665001", 2, 4, FRACTURE)
CRUSH_TRUNK = _t("125665001", 3, 5, BLEED | FRACTURE)  # ribs, pelvis: imaged
TBI = _t("127295002", 3, 5, HEAD)
CONCUSSION = _t("110030002", 1, 2, HEAD)
TENSION_PNEUMOTHORAX = _t("233645004", 4, 5, CHEST)
HEMOTHORAX = _t("31892009", 3, 5, CHEST | BLEED)
GSW_LIMB = _t("283545005", 2, 3, BLEED | WOUND | PENETRATING)
GSW_HEAD = _t("283545005", 4, 6, BLEED | WOUND | PENETRATING | HEAD)
GSW_TRUNK = _t("283545005", 3, 5, BLEED | WOUND | PENETRATING)
GSW_FACE = _t("283545005", 2, 3, BLEED | WOUND | PENETRATING)
BULLET_LIMB = _t("262574004", 2, 3, BLEED | WOUND | PENETRATING)
BULLET_HEAD = _t("262574004", 4, 6, BLEED | WOUND | PENETRATING | HEAD)
BULLET_TRUNK = _t("262574004", 3, 5, BLEED | WOUND | PENETRATING)
SPINAL_CORD = _t("1734006", 4, 5, SPINE | FRACTURE)
SPRAIN_ANKLE = _t("44465007", 1, 1, HEALS)
LOW_BACK_PAIN = _t("279039007", 1, 1, HEALS)

Table = tuple[tuple[Template, ...], list[float]]


def _table(*pairs: tuple[Template, float]) -> Table:
    return tuple(p[0] for p in pairs), cumulative([p[1] for p in pairs])


_BURNS = ((BURN_1, 0.25), (BURN_2, 0.45), (BURN_3, 0.30))

#: Battle condition tables by mechanism and region group.
BATTLE_TABLES: dict[str, dict[str, Table]] = {
    "explosive": {
        "head": _table((TBI, 0.30), (CONCUSSION, 0.25), (OPEN_WOUND_HEAD, 0.18),
                       (FRAGMENT_HEAD, 0.17), (LACERATION, 0.10)),
        "face": _table((OPEN_WOUND_FACE, 0.30), (LACERATION, 0.25), (FRAGMENT_FACE, 0.25),
                       (FRACTURE_FACE_RIB, 0.10), (BURN_2, 0.10)),
        "eye": _table((FRAGMENT_EYE, 0.75), (LACERATION_EYE, 0.25)),
        "ear": _table((OPEN_WOUND_FACE, 0.5), (LACERATION, 0.5)),
        "neck": _table((OPEN_WOUND_TRUNK, 0.40), (FRAGMENT_TRUNK, 0.35), (LACERATION, 0.25)),
        "thorax": _table((OPEN_WOUND_TRUNK, 0.25), (FRAGMENT_TRUNK, 0.25), (HEMOTHORAX, 0.15),
                         (TENSION_PNEUMOTHORAX, 0.10), (FRACTURE_FACE_RIB, 0.15), (BURN_2, 0.10)),
        "abdomen": _table((OPEN_WOUND_TRUNK, 0.35), (FRAGMENT_TRUNK, 0.35),
                          (CONTUSION_ABDOMEN, 0.10), (CRUSH_TRUNK, 0.10), (BURN_2, 0.10)),
        "limb": _table((OPEN_WOUND_LIMB, 0.22), (FRAGMENT_LIMB, 0.22), (OPEN_FRACTURE, 0.16),
                       (AMPUTATION_LIMB, 0.08), (LACERATION, 0.10), (BURN_1, 0.03),
                       (BURN_2, 0.04), (BURN_3, 0.03), (CONTUSION, 0.06), (CRUSH, 0.06)),
    },
    "gunshot": {
        "head": _table((GSW_HEAD, 0.7), (BULLET_HEAD, 0.3)),
        "face": _table((GSW_FACE, 0.8), (FRACTURE_FACE_RIB, 0.2)),
        "eye": _table((GSW_EYE, 1.0),),
        "ear": _table((GSW_FACE, 0.6), (LACERATION, 0.4)),
        "neck": _table((GSW_TRUNK, 0.75), (BULLET_TRUNK, 0.25)),
        "thorax": _table((GSW_TRUNK, 0.55), (BULLET_TRUNK, 0.15), (HEMOTHORAX, 0.20),
                         (TENSION_PNEUMOTHORAX, 0.10)),
        "abdomen": _table((GSW_TRUNK, 0.75), (BULLET_TRUNK, 0.25)),
        "limb": _table((GSW_LIMB, 0.60), (BULLET_LIMB, 0.15), (OPEN_FRACTURE, 0.25)),
    },
    "burn": {
        "head": _table(*_BURNS), "face": _table(*_BURNS), "eye": _table((BURN_EYE, 1.0),),
        "ear": _table((BURN_1, 0.5), (BURN_2, 0.5)), "neck": _table(*_BURNS),
        "thorax": _table(*_BURNS), "abdomen": _table(*_BURNS), "limb": _table(*_BURNS),
    },
    "crush": {
        "head": _table((TBI, 0.4), (CONCUSSION, 0.6)),
        "face": _table((FRACTURE_FACE_RIB, 0.5), (LACERATION, 0.5)),
        "eye": _table((CONTUSION, 1.0),),
        "ear": _table((LACERATION, 1.0),),
        "neck": _table((CONTUSION, 1.0),),
        "thorax": _table((CRUSH_TRUNK, 0.5), (FRACTURE_FACE_RIB, 0.3), (HEMOTHORAX, 0.2)),
        "abdomen": _table((CRUSH_TRUNK, 0.6), (CONTUSION_ABDOMEN, 0.4)),
        "limb": _table((CRUSH, 0.5), (CLOSED_FRACTURE, 0.3), (CONTUSION, 0.2)),
    },
    "blunt": {
        "head": _table((CONCUSSION, 0.6), (TBI, 0.4)),
        "face": _table((CONTUSION, 0.5), (LACERATION, 0.3), (FRACTURE_FACE_RIB, 0.2)),
        "eye": _table((CONTUSION, 1.0),),
        "ear": _table((CONTUSION, 0.5), (LACERATION, 0.5)),
        "neck": _table((CONTUSION, 1.0),),
        "thorax": _table((CONTUSION, 0.6), (FRACTURE_FACE_RIB, 0.4)),
        "abdomen": _table((CONTUSION_ABDOMEN, 1.0),),
        "limb": _table((CONTUSION, 0.5), (CLOSED_FRACTURE, 0.25), (LACERATION, 0.25)),
    },
}  # fmt: skip

# Region sets for non-battle injuries: name -> (region keys, cumulative weights)
_REGION_SETS: dict[str, tuple[tuple[str, ...], list[float]]] = {
    "lower_limb": (LOWER_LIMBS, cumulative([1, 1])),
    "limb": (LIMBS, cumulative([1, 1, 1.4, 1.4])),
    "head": (("head",), [1.0]),
    "spine": (("spine",), [1.0]),
    "any": (
        ("head", "face", "thorax", "abdomen", *LIMBS),
        cumulative([0.10, 0.05, 0.15, 0.10, 0.14, 0.14, 0.16, 0.16]),
    ),
    "cut": (
        ("head", "face", "neck", *LIMBS),
        cumulative([0.15, 0.2, 0.05, 0.15, 0.15, 0.15, 0.15]),
    ),
    "fracture": (
        ("face", "thorax", "pelvis", *LIMBS),
        cumulative([0.05, 0.10, 0.05, 0.18, 0.18, 0.22, 0.22]),
    ),
    "burn": (
        ("face", "thorax", "abdomen", *LIMBS),
        cumulative([0.15, 0.15, 0.1, 0.15, 0.15, 0.15, 0.15]),
    ),
    "crush": (
        ("thorax", "abdomen", "pelvis", *LIMBS),
        cumulative([0.08, 0.06, 0.06, 0.2, 0.2, 0.2, 0.2]),
    ),
}  # fmt: skip

NbiTable = tuple[tuple[tuple[Template, str], ...], list[float]]


def _nbi(*rows: tuple[Template, str, float]) -> NbiTable:
    return tuple((r[0], r[1]) for r in rows), cumulative([r[2] for r in rows])


NBI_TABLES: dict[str, NbiTable] = {
    "sports_training": _nbi((SPRAIN_ANKLE, "lower_limb", 0.45), (CLOSED_FRACTURE, "limb", 0.15),
                            (CONTUSION, "any", 0.20), (LACERATION, "cut", 0.10),
                            (LOW_BACK_PAIN, "spine", 0.10)),
    "fall": _nbi((CLOSED_FRACTURE, "fracture", 0.35), (CONTUSION, "any", 0.25),
                 (SPRAIN_ANKLE, "lower_limb", 0.15), (CONCUSSION, "head", 0.10),
                 (LACERATION, "cut", 0.10), (OPEN_FRACTURE, "limb", 0.03),
                 (SPINAL_CORD, "spine", 0.02)),
    "vehicle": _nbi((CLOSED_FRACTURE, "fracture", 0.30), (CONTUSION, "any", 0.20),
                    (CONCUSSION, "head", 0.15), (LACERATION, "cut", 0.15), (TBI, "head", 0.05),
                    (OPEN_FRACTURE, "limb", 0.07), (CRUSH, "crush", 0.05),
                    (SPINAL_CORD, "spine", 0.03)),
    "overexertion": _nbi((LOW_BACK_PAIN, "spine", 0.6), (SPRAIN_ANKLE, "lower_limb", 0.4)),
    "crush": _nbi((CRUSH, "crush", 0.6), (CLOSED_FRACTURE, "limb", 0.3), (LACERATION, "cut", 0.1)),
    "burn": _nbi((BURN_1, "burn", 0.4), (BURN_2, "burn", 0.45), (BURN_3, "burn", 0.15)),
    "blunt": _nbi((CONTUSION, "any", 0.6), (LACERATION, "cut", 0.4)),
}  # fmt: skip

PNEUMONIA = _t("233604007", 2, 4, INFECTION | RESPIRATORY)
DEHYDRATION = _t("34095006", 1, 3, GI | HEALS)
UPPER_RESPIRATORY_INFECTION = _t("54150009", 1, 2, INFECTION | RESPIRATORY | VIRAL | HEALS)
INFLUENZA = _t("6142004", 1, 2, INFECTION | RESPIRATORY | VIRAL | HEALS)
GASTROENTERITIS = _t("25374005", 1, 2, GI | HEALS)
CELLULITIS = _t("128045006", 1, 2, INFECTION | HEALS)
URINARY_TRACT_INFECTION = _t("68566005", 1, 2, INFECTION | HEALS)
DEPRESSION = _t("35489007", 1, 3, PSYCH)  # a depressive disorder

#: Disease (code, display, ais low, ais high, flags) with relative frequency.
DISEASES: tuple[tuple[Template, float], ...] = (
    (UPPER_RESPIRATORY_INFECTION, 0.22),
    (INFLUENZA, 0.07),
    (PNEUMONIA, 0.03),
    (GASTROENTERITIS, 0.18),
    (DEHYDRATION, 0.07),  # heat and field conditions
    (CELLULITIS, 0.06),
    (URINARY_TRACT_INFECTION, 0.04),
    # combat and operational stress: an acute stress reaction in theatre, never PTSD (which needs
    # symptoms for more than a month after the trauma)
    (_t("67195008", 1, 3, PSYCH), 0.07),
    (DEPRESSION, 0.05),
    (_t("197480006", 1, 2, PSYCH), 0.06),
)
DISEASE_TABLE: Table = (tuple(d[0] for d in DISEASES), cumulative([d[1] for d in DISEASES]))

#: Every condition template the tables draw (battle, non-battle, disease).
TEMPLATES: frozenset[Template] = frozenset(
    [t for groups in BATTLE_TABLES.values() for table in groups.values() for t in table[0]]
    + [row[0] for table in NBI_TABLES.values() for row in table[0]]
    + list(DISEASE_TABLE[0])
)

#: AIS -> severity label of a condition.
SEVERITY: tuple[Severity, ...] = (
    "mild", "mild", "moderate", "severe", "severe", "critical", "critical",
)  # fmt: skip

BODY = BODY_SITES
BATTLE_REGION_KEYS = tuple(BATTLE_REGIONS)
BATTLE_REGION_CUM = cumulative(list(BATTLE_REGIONS.values()))

Injury = tuple[Template, str | None, int]  # (template, region key or None, ais)


def _ais(template: Template, random: Callable[[], float]) -> int:
    lo, hi = template[2], template[3]
    return lo + int(random() * (hi - lo + 1)) if hi > lo else lo


def battle_injuries(mechanism: str, random: Callable[[], float]) -> list[Injury]:
    """One or more wounds of a battle casualty (explosions often wound several regions)."""
    if mechanism == "explosive":
        n = 1
        while n < 5 and random() < 0.45:
            n += 1
    else:
        n = 2 if random() < 0.22 else 1
    tables = BATTLE_TABLES[mechanism]
    out: list[Injury] = []
    for _ in range(n):
        region = BATTLE_REGION_KEYS[bisect_right(BATTLE_REGION_CUM, random())]
        templates, cum = tables[GROUP[region]]
        template = templates[bisect_right(cum, random())]
        _add(out, template, region, _ais(template, random))
    return out


def _add(out: list[Injury], template: Template, region: str | None, ais: int) -> None:
    """Append an injury; the same condition twice on one region is one condition, at the worse
    severity (a record never lists one code twice for a region)."""
    code = template[0]
    for k, (other, where, level) in enumerate(out):
        if other[0] == code and where == region:
            if ais > level:
                out[k] = (other, region, ais)
            return
    out.append((template, region, ais))


def nbi_injuries(mechanism: str, random: Callable[[], float]) -> list[Injury]:
    """One, sometimes two, injuries of a non-battle casualty."""
    rows, cum = NBI_TABLES[mechanism]
    out: list[Injury] = []
    for _ in range(2 if random() < 0.15 else 1):
        template, region_set = rows[bisect_right(cum, random())]
        keys, rcum = _REGION_SETS[region_set]
        region = keys[bisect_right(rcum, random())] if len(keys) > 1 else keys[0]
        _add(out, template, region, _ais(template, random))
    return out


def disease(random: Callable[[], float]) -> list[Injury]:
    """The illness of a disease casualty (no body site)."""
    templates, cum = DISEASE_TABLE
    template = templates[bisect_right(cum, random())]
    return [(template, None, _ais(template, random))]


def never_minimal(template: Template, region: str | None) -> bool:
    """Whether a casualty with this injury is never minimal (T3) at a triage: a fracture of a
    leg (the triage sieve's minimal are the walking wounded, and a broken leg does not walk) or
    an open fracture of any limb (it needs its operation, the debridement within 24 hours: the
    delayed category's definition). build._hurt, plan.calibrate and coherence's rule ask it."""
    return bool(template[4] & FRACTURE) and (
        region in LOWER_LIMBS or (region in LIMBS and bool(template[4] & WOUND))
    )


def iss(injuries: list[Injury]) -> int:
    """Injury severity score: sum of squares of the three highest AIS; 75 when any AIS is 6."""
    top = sorted((inj[2] for inj in injuries), reverse=True)[:3]
    if top and top[0] >= 6:
        return 75
    return sum(a * a for a in top)


def heals_within_days(injuries: list[Injury]) -> bool:
    """Whether every injury (or illness) heals within days: a HEALS template at most moderate
    (AIS 2). Such a casualty returns to duty within 72 hours (build._path; build._hurt computes
    the same inline as `minor`, the hot path)."""
    return all(t[4] & HEALS and ais <= 2 for t, _, ais in injuries)
