"""Names and service numbers per NATO nation.

Name pools are built once per nation (cached) from the word lists of Faker's person providers
(first_names_male, first_names_female, last_names, ...), read as plain attributes: no Faker instance
and no Faker RNG is involved, so the pools never depend on library call order. Patients sample them
with their own random stream. Weighted Faker lists (OrderedDict name -> frequency) keep their
weights.

Albania has no Faker person locale (sq falls back to US names), so it gets a small pool of common
Albanian names written here. Montenegro has none either: it uses hr_HR, since Montenegrin and
Croatian are mutually intelligible standard forms of the same language and share name stock and
Latin script.
Greek, Bulgarian and Macedonian names are in Greek/Cyrillic script; `transliterate=True` gives Latin
script (ELOT 743 for Greek, the Bulgarian Streamlined System, the Macedonian official romanisation,
simplified).
"""

from __future__ import annotations

import importlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache
from random import Random

from patientgen.generator.rng import cumulative

#: ISO 3166-1 alpha-3 -> Faker person locales whose word lists make the nation's pool.
LOCALES: dict[str, tuple[str, ...]] = {
    "ALB": (),  # no Faker locale: see ALBANIAN below
    "BEL": ("nl_BE", "fr_BE"),
    "BGR": ("bg_BG",),
    "CAN": ("en_US", "fr_CA"),  # Faker has no en_CA person provider; en_US is the closest
    "HRV": ("hr_HR",),
    "CZE": ("cs_CZ",),
    "DNK": ("da_DK",),
    "EST": ("et_EE",),
    "FIN": ("fi_FI",),
    "FRA": ("fr_FR",),
    "DEU": ("de_DE",),
    "GRC": ("el_GR",),
    "HUN": ("hu_HU",),
    "ISL": ("is_IS",),
    "ITA": ("it_IT",),
    "LVA": ("lv_LV",),
    "LTU": ("lt_LT",),
    "LUX": ("de_LU",),
    "MNE": ("hr_HR",),  # no Faker locale: Croatian, the closest related (see module docstring)
    "NLD": ("nl_NL",),
    "MKD": ("mk_MK",),
    "NOR": ("no_NO",),
    "POL": ("pl_PL",),
    "PRT": ("pt_PT",),
    "ROU": ("ro_RO",),
    "SVK": ("sk_SK",),
    "SVN": ("sl_SI",),
    "ESP": ("es_ES",),
    "SWE": ("sv_SE",),
    "TUR": ("tr_TR",),
    "GBR": ("en_GB",),
    "USA": ("en_US",),
}

#: Common Albanian names (Albania has no Faker person locale). Family names do not change by gender.
ALBANIAN = {
    "male": (
        "Arben", "Ardit", "Besnik", "Dritan", "Endrit", "Erion", "Fatmir", "Gentian", "Ilir",
        "Klodian", "Ledio", "Mirel", "Olsi", "Redon", "Sokol", "Taulant", "Valon", "Agron",
        "Bledar", "Ermal",
    ),
    "female": (
        "Anila", "Arjola", "Besiana", "Blerta", "Drita", "Elira", "Entela", "Fjona", "Jonida",
        "Klea", "Ledia", "Lindita", "Manjola", "Mirela", "Rezarta", "Teuta", "Valbona", "Xhensila",
        "Elona", "Dorina",
    ),
    "last": (
        "Hoxha", "Shehu", "Leka", "Dervishi", "Gjoka", "Krasniqi", "Berisha", "Kola", "Marku",
        "Prifti", "Hasani", "Cela", "Basha", "Muça", "Duka", "Gjini", "Dibra", "Meta", "Toska",
        "Kapllani",
    ),
}  # fmt: skip

_GREEK_DIGRAPHS = (
    ("ου", "ou"), ("ού", "ou"), ("αυ", "av"), ("αύ", "av"), ("ευ", "ev"), ("εύ", "ev"),
    ("ηυ", "iv"), ("γγ", "ng"), ("γκ", "gk"), ("γχ", "nch"), ("μπ", "mp"), ("ντ", "nt"),
)  # fmt: skip
_GREEK = str.maketrans({
    "α": "a", "ά": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "έ": "e", "ζ": "z", "η": "i",
    "ή": "i", "θ": "th", "ι": "i", "ί": "i", "ϊ": "i", "ΐ": "i", "κ": "k", "λ": "l", "μ": "m",
    "ν": "n", "ξ": "x", "ο": "o", "ό": "o", "π": "p", "ρ": "r", "σ": "s", "ς": "s", "τ": "t",
    "υ": "y", "ύ": "y", "ϋ": "y", "ΰ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o", "ώ": "o",
})  # fmt: skip
_BULGARIAN = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s",
    "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sht", "ъ": "a",
    "ь": "y", "ю": "yu", "я": "ya",
})  # fmt: skip
_MACEDONIAN = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ѓ": "gj", "е": "e", "ж": "zh", "з": "z",
    "ѕ": "dz", "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj",
    "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "ќ": "kj", "у": "u", "ф": "f", "х": "h",
    "ц": "c", "ч": "ch", "џ": "dzh", "ш": "sh",
})  # fmt: skip


def _capitalise(text: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in text.split("-"))


def transliterate(name: str, nation: str) -> str:
    """Latin-script form of a Greek (GRC), Bulgarian (BGR) or Macedonian (MKD) name."""
    low = name.lower()
    if nation == "GRC":
        for src, dst in _GREEK_DIGRAPHS:
            low = low.replace(src, dst)
        out = low.translate(_GREEK)
    elif nation == "BGR":
        out = (low[:-2] + "ia" if low.endswith("ия") else low).translate(_BULGARIAN)
    elif nation == "MKD":
        out = low.translate(_MACEDONIAN)
    else:
        return name
    return _capitalise(out)


class Pool:
    """A list of names, optionally weighted; `pick(r)` maps r in [0, 1) to a name."""

    __slots__ = ("cum", "items", "n")

    def __init__(self, items: Sequence[str], weights: Sequence[float] | None = None) -> None:
        if not items:
            raise ValueError("empty name pool")
        self.items = tuple(items)
        self.n = len(self.items)
        self.cum = cumulative(list(weights)) if weights is not None else None

    def pick(self, r: float) -> str:
        if self.cum is None:
            return self.items[int(r * self.n)]
        return self.items[bisect_right(self.cum, r)]


def _merge(parts: list[Sequence[str] | dict[str, float]]) -> Pool:
    """One pool from several word lists; weighted lists keep their relative weights."""
    names: dict[str, float] = {}
    weighted = False
    for part in parts:
        if isinstance(part, dict):
            weighted = True
            total = float(sum(part.values())) or 1.0
            scale = len(part) / total  # same mass per entry as an unweighted list
            for name, w in part.items():
                names[name] = names.get(name, 0.0) + w * scale
        else:
            for name in part:
                names[name] = names.get(name, 0.0) + 1.0
    items = sorted(names)  # a fixed order, independent of dict insertion in Faker
    return Pool(items, [names[n] for n in items] if weighted else None)


def _lithuanian_female_surname(name: str) -> str:
    for ending, female in (("ius", "ienė"), ("as", "ienė"), ("is", "ienė"), ("ys", "ienė"),
                           ("us", "uvienė")):  # fmt: skip
        if name.endswith(ending):
            return name[: -len(ending)] + female
    return name


def _polish_female_surname(name: str) -> str:
    for ending, female in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
        if name.endswith(ending):
            return name[: -len(ending)] + female
    return name


@cache
def pools(nation: str, transliterated: bool = False) -> tuple[Pool, Pool, Pool, Pool]:
    """(male first, female first, male family, female family) name pools of a nation."""
    if nation == "ALB":
        last = Pool(sorted(ALBANIAN["last"]))
        return Pool(sorted(ALBANIAN["male"])), Pool(sorted(ALBANIAN["female"])), last, last
    male: list = []
    female: list = []
    last_m: list = []
    last_f: list = []
    for locale in LOCALES[nation]:
        p = importlib.import_module(f"faker.providers.person.{locale}").Provider
        first_m = getattr(p, "first_names_male", None)
        first_f = getattr(p, "first_names_female", None)
        if first_m is None or first_f is None:  # lt_LT: one mixed list
            mixed = list(p.first_names)
            first_f = [n for n in mixed if n.endswith(("a", "ė"))]
            first_m = [n for n in mixed if not n.endswith(("a", "ė"))]
        male.append(first_m)
        female.append(first_f)
        if locale == "is_IS":  # patronymics
            roots = p.last_names_without_suffix
            last_m.append([r + "son" for r in roots])
            last_f.append([r + "dóttir" for r in roots])
        elif locale == "pl_PL":
            last_m.append(list(p.unisex_last_names) + list(p.male_last_names))
            last_f.append(
                list(p.unisex_last_names) + [_polish_female_surname(n) for n in p.male_last_names]
            )
        elif locale == "lt_LT":
            last_m.append(list(p.last_names))
            last_f.append([_lithuanian_female_surname(n) for n in p.last_names])
        elif getattr(p, "last_names_male", None) and getattr(p, "last_names_female", None):
            last_m.append(p.last_names_male)
            last_f.append(p.last_names_female)
        else:
            last_m.append(p.last_names)
            last_f.append(p.last_names)
    result = [_merge(male), _merge(female), _merge(last_m), _merge(last_f)]
    if transliterated and nation in ("GRC", "BGR", "MKD"):
        result = [
            Pool([transliterate(n, nation) for n in pool.items], _weights(pool)) for pool in result
        ]
    return result[0], result[1], result[2], result[3]


def _weights(pool: Pool) -> list[float] | None:
    if pool.cum is None:
        return None
    prev = 0.0
    out = []
    for c in pool.cum:
        out.append(c - prev)
        prev = c
    return out


# --- service numbers -----------------------------------------------------------------------------
# Synthetic formats in the style of each nation's service or personal numbers; not real numbers.
# "#" is a digit, "@" an upper-case letter, "{dob}" the birth date as DDMMYY and "{init}" the
# initial of the family name (German Personenkennziffer style); anything else is literal.
SERVICE_NUMBER_FORMATS: dict[str, str] = {
    "ALB": "AL@######", "BEL": "#-#####-##", "BGR": "BG########", "CAN": "@##-###-###",
    "HRV": "HR#########", "CZE": "CZ-#######", "DNK": "DK######-####", "EST": "EE########",
    "FIN": "FI-######-###", "FRA": "##########", "DEU": "{dob}-{init}-#####", "GRC": "GR@#####",
    "HUN": "HU########", "ISL": "IS######-####", "ITA": "IT@@######", "LVA": "LV######-#####",
    "LTU": "LT#########", "LUX": "LU#######", "MNE": "ME########", "NLD": "NL########",
    "MKD": "MK#######", "NOR": "NO#######", "POL": "PL@@#######", "PRT": "PT########",
    "ROU": "RO#########", "SVK": "SK########", "SVN": "SI########", "ESP": "ES########@",
    "SWE": "SE######-####", "TUR": "TR###########", "GBR": "30######", "USA": "##########",
}  # fmt: skip

_Part = tuple[int, str, int]  # (kind, literal or format, count): 0 literal, 1 digits, 2 letters


@cache
def _compiled(nation: str) -> tuple[_Part, ...]:
    fmt = SERVICE_NUMBER_FORMATS[nation]
    parts: list[_Part] = []
    k = 0
    while k < len(fmt):
        ch = fmt[k]
        if fmt.startswith("{dob}", k):
            parts.append((3, "", 0))
            k += 5
            continue
        if fmt.startswith("{init}", k):
            parts.append((4, "", 0))
            k += 6
            continue
        if ch in "#@":
            j = k
            while j < len(fmt) and fmt[j] == ch:
                j += 1
            n = j - k
            parts.append((1, f"%0{n}d", 10**n) if ch == "#" else (2, "", n))
            k = j
            continue
        if parts and parts[-1][0] == 0:
            parts[-1] = (0, parts[-1][1] + ch, 0)
        else:
            parts.append((0, ch, 0))
        k += 1
    return tuple(parts)


@cache
def service_number_draws(nation: str) -> int:
    """How many numbers `service_number` draws from the stream for `nation` (always the same)."""
    return sum(
        1 if kind == 1 else count if kind == 2 else 0 for kind, _, count in _compiled(nation)
    )


def service_number(nation: str, random: Callable[[], float], birth: date, family: str) -> str:
    """A service number in the nation's format, drawn from the patient's stream."""
    parts = _compiled(nation)
    if len(parts) == 2 and parts[0][0] == 0 and parts[1][0] == 1:  # fast path: prefix + digits
        return parts[0][1] + parts[1][1] % int(random() * parts[1][2])
    if len(parts) == 1 and parts[0][0] == 1:  # digits only
        return parts[0][1] % int(random() * parts[0][2])
    out = []
    for kind, text, count in _compiled(nation):
        if kind == 0:
            out.append(text)
        elif kind == 1:
            out.append(text % int(random() * count))
        elif kind == 2:
            out.append("".join(chr(65 + int(random() * 26)) for _ in range(count)))
        elif kind == 3:
            out.append(f"{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}")
        else:
            initial = transliterate(family, nation)[:1].upper() if family else "X"
            out.append(initial if initial.isascii() and initial.isalpha() else "X")
    return "".join(out)


def pick_name(rng: Random, nation: str, female: bool, transliterated: bool) -> tuple[str, str]:
    """(given, family) for one patient."""
    first_m, first_f, last_m, last_f = pools(nation, transliterated)
    r = rng.random
    if female:
        return first_f.pick(r()), last_f.pick(r())
    return first_m.pick(r()), last_m.pick(r())
