"""Strict typing (README, "Parsing"): ``validate.typed_sql``, with and without the shortcut
for a row whose numbers hold only digits, signs and points, against the contract's
patterns applied the plain way (a full-match regex, then ``try_cast``), on real Spark, for
thousands of values: valid ones, valid ones with one character changed or added, and
random strings of the characters that matter."""

import random

import pytest

from spark_steps.validate import DATE_PATTERN, DECIMAL_PATTERN, INT_PATTERN, PLAIN_PATTERN, sql_str, typed_sql

RISKY = list("0123456789+-.eE,:T x") + ["\t", "\r", "\n", "\x00", "\x0b", "\u00a0", "\u0661", "\uff11", "\u2028",
                                            "\u00e9", "\u0085", '"']
PATTERNS = {"int": INT_PATTERN, "bigint": INT_PATTERN, "decimal(38,2)": DECIMAL_PATTERN,
            "decimal(19,6)": DECIMAL_PATTERN, "date": DATE_PATTERN}


def _valid(rng: random.Random, type_name: str) -> str:
    if type_name == "date":
        return f"{rng.randint(0, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22 if "int" in type_name else 40)))
    sign = rng.choice(["", "", "+", "-"])
    if "decimal" in type_name and rng.random() < 0.6:
        point = rng.randint(0, len(digits))
        return sign + digits[:point] + "." + digits[point:]
    return sign + digits


def _values(seed: int = 13, n: int = 3000) -> list[str]:
    rng = random.Random(seed)
    out = []
    for type_name in PATTERNS:
        for _ in range(n):
            value = _valid(rng, type_name)
            kind = rng.random()
            if kind < 0.3:
                at = rng.randint(0, len(value))
                value = value[:at] + rng.choice(RISKY) + value[at:]
            elif kind < 0.45 and value:
                at = rng.randrange(len(value))
                value = value[:at] + rng.choice(RISKY) + value[at + 1:]
            out.append(value)
        out += ["".join(rng.choice(RISKY) for _ in range(rng.randint(0, 12))) for _ in range(n // 3)]
    return out


@pytest.mark.parametrize("type_name", list(PATTERNS))
def test_typing_accepts_exactly_the_strict_forms(spark, type_name):
    values = _values()
    df = spark.createDataFrame([(v,) for v in values], "v string")
    oracle = f"CASE WHEN v RLIKE {sql_str(PATTERNS[type_name])} THEN try_cast(v AS {type_name}) END"
    plain = f"v RLIKE {sql_str(PLAIN_PATTERN)}"
    rows = df.selectExpr("v", f"{typed_sql('v', type_name)} AS got", f"{typed_sql('v', type_name, plain)} AS fast",
                         f"{oracle} AS want").collect()
    differ = [(r["v"], r["got"], r["fast"], r["want"]) for r in rows if not r["got"] == r["fast"] == r["want"]]
    assert differ == []
    accepted = sum(r["want"] is not None for r in rows)
    assert 1000 < accepted < len(rows) - 1000  # both sides of the rule are exercised


def test_what_try_cast_alone_would_take_is_refused(spark):
    cases = {"int": [" 1", "1 ", "\t1", "1\r", "1\n"], "decimal(38,2)": ["1e3", "1E3", " 1.5", "\u0661\u0662", "1.5\r"],
             "date": ["2024-1-5", "2024-01-5", " 2024-01-05", "2024-01-05 ", "2024-01-05T00:00", "+2024-01-05"]}
    for type_name, values in cases.items():
        df = spark.createDataFrame([(v,) for v in values], "v string")
        got = df.selectExpr(f"{typed_sql('v', type_name)} AS got", f"try_cast(v AS {type_name}) AS plain").collect()
        assert [r["got"] for r in got] == [None] * len(values), type_name
        assert None not in [r["plain"] for r in got], type_name  # what a plain cast would have let in
