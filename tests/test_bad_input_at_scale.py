"""Bad input at scale: generated inventories and phases either load or fail with one clean line.

Loading is the only thing that touches an inventory before a provider could be called, so it
is checked in process, hundreds of times: every outcome is a valid Inventory or an
InventoryError (exit 2) whose message is one line naming the file. Nothing else may escape.
"""

from __future__ import annotations

import shutil

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthinfra.errors import InventoryError
from healthinfra.inventory import Inventory, load_inventory, parse_phase

from .support.environment import REPO

GOOD = yaml.safe_load((REPO / "inventories" / "local.yml").read_text())
KEYS = list(GOOD) + ["databse", "phase ", "providers.aws", "", "ü", "\u202e"]

odd_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    odd_text,
    st.text(min_size=5000, max_size=6000),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | odd_text, inner, max_size=4)
    ),
    max_leaves=10,
)


def mutate(draw_ops, base: dict) -> dict:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for op, key, value in draw_ops:
        if op == "drop" and key in data:
            del data[key]
        elif op == "set":
            data[key] = value
        elif op == "nest" and isinstance(data.get(key), dict) and data[key]:
            inner = sorted(data[key])[0]
            data[key][inner] = value
    return data


ops = st.lists(st.tuples(st.sampled_from(["drop", "set", "nest"]), st.sampled_from(KEYS), values), max_size=4)


def check_outcome(directory, text: str) -> None:
    (directory / "fuzz.yml").write_text(text, encoding="utf-8")
    try:
        result = load_inventory("fuzz", directory)
    except InventoryError as exc:
        message = str(exc)
        assert message.startswith(str(directory / "fuzz.yml")) or message.startswith("--"), message
        assert "\n" not in message and len(message) < 2000, message
        assert exc.exit_code == 2
        return
    assert isinstance(result, Inventory) and result.phase in (1, 2, 3, 4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=ops)
def test_generated_inventories_load_or_fail_with_one_clean_line(tmp_path_factory, changes):
    directory = tmp_path_factory.mktemp("fuzz", numbered=True)
    for table in ("services.yml", "data_types.yml"):
        shutil.copy(REPO / "inventories" / table, directory / table)
    data = mutate(changes, GOOD)
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    check_outcome(directory, text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_arbitrary_text_as_an_inventory(tmp_path_factory, text):
    directory = tmp_path_factory.mktemp("raw", numbered=True)
    for table in ("services.yml", "data_types.yml"):
        shutil.copy(REPO / "inventories" / table, directory / table)
    check_outcome(directory, text)


@given(value=scalars)
def test_any_phase_value_is_a_phase_or_one_clean_line(value):
    try:
        phase = parse_phase(value)
    except InventoryError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--phase: `phase` must be 1, 2, 3 or 4")
    else:
        assert phase in (1, 2, 3, 4)
