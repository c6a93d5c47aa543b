"""Generated bad inputs (Hypothesis, seeded and bounded): structures, settings, sweep configs and CLI options.

Every case must end in a result or in one of the documented errors (StructureError /
ValueError / TypeError with a one-line message; the CLI exits 0 or 2 with one
``xrdnb ...: error:`` line per problem and still processes the good inputs), never in a
traceback, a crash or a hang.
"""

import math
import re

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import xrdnb  # noqa: E402
from xrdnb import StructureError, load_structure  # noqa: E402
from xrdnb.cli import main  # noqa: E402
from xrdnb.structures import _data_dir  # noqa: E402

BPO4 = _data_dir().joinpath("BPO4.cif").read_text()
FUZZ = settings(
    max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["nan", "inf", "-inf", "-0", "1e309", "abc", "", "0", "-1", "1.5(3)"]),
)


def _mutate(text: str, field: int, value) -> str:
    """Replace the ``field``-th number of the CIF by ``value``."""
    matches = list(re.finditer(r"(?<![\w.])-?\d+\.\d+", text))
    m = matches[field % len(matches)]
    return text[: m.start()] + str(value) + text[m.end() :]


@FUZZ
@given(field=st.integers(0, 200), value=numbers, cut=st.one_of(st.none(), st.integers(0, len(BPO4))))
def test_mutated_cifs_load_or_fail_with_one_line(tmp_path_factory, field, value, cut):
    text = _mutate(BPO4, field, value)
    if cut is not None:
        text = text[:cut]
    path = tmp_path_factory.mktemp("cif") / "fuzz.cif"
    path.write_text(text)
    try:
        structure = load_structure(path)
    except StructureError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message
        return
    crystal = xrdnb.crystal_from_structure(structure)
    pattern = xrdnb.simulate_pattern(crystal)
    assert pattern.shape == (1, 9000) and bool(pattern.isfinite().all())


@FUZZ
@given(
    wavelength=st.floats(min_value=-10, max_value=1e3) | st.sampled_from([math.nan, math.inf, 0.0, 1e-3]),
    two_theta_max=st.floats(min_value=-10, max_value=400) | st.sampled_from([math.nan, math.inf]),
    step=st.floats(min_value=-1, max_value=50) | st.sampled_from([math.nan, 0.0, 1e-4]),
    hkl_max=st.one_of(st.none(), st.integers(-3, 8)),
)
def test_settings_are_accepted_or_refused_cleanly(wavelength, two_theta_max, step, hkl_max):
    try:
        settings_ = xrdnb.XRDSettings(
            wavelength=wavelength, two_theta_max=two_theta_max, two_theta_step=step, hkl_max=hkl_max
        )
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    crystal = xrdnb.crystal_from_structure(load_structure("U2Ti"))
    try:
        pattern = xrdnb.simulate_pattern(crystal, settings_)
    except ValueError as exc:  # the size guard
        assert "max_reflections" in str(exc)
        return
    assert bool(pattern.isfinite().all()) and pattern.shape[0] == 1


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(
        st.one_of(st.integers(-2, 3), st.floats(allow_nan=True), st.sampled_from(["U2Ti", "cosine", "x"])), max_size=3
    ),
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "structures",
                "lattice_levels",
                "coordinate_levels",
                "losses",
                "constrained_losses",
                "lattice_lrs",
                "coordinate_lrs",
                "seeds",
                "n_copies",
                "max_steps",
                "patience",
                "tol",
                "record_every",
                "dtype",
                "bogus",
            ]
        ),
        values,
        max_size=4,
    )
)
def test_sweep_configs_are_checked_up_front(data):
    from xrdnb.sweep import SweepSpec

    base = {"structures": ["U2Ti"], "lattice_levels": [0.01], "coordinate_levels": []}
    try:
        spec = SweepSpec.from_dict({**base, **data})
    except (ValueError, TypeError) as exc:
        assert "\n" not in str(exc)
        return
    for cell in spec.cells():  # whatever is accepted makes well-formed cells
        assert cell.n_copies >= 1 and cell.patience >= 1 and cell.lr > 0


option_values = st.one_of(numbers.map(str), st.sampled_from(["CuKa", "MoKa", "0.7", "90", "45", "0.02"]))


@FUZZ
@given(
    command=st.sampled_from(["peaks", "pattern"]),
    option=st.sampled_from(["--wavelength", "--two-theta-max", "--two-theta-step"]),
    value=option_values,
    bad_field=st.integers(0, 200),
    bad_value=numbers,
)
def test_cli_never_raises_and_still_processes_the_good_input(
    tmp_path_factory, capsys, command, option, value, bad_field, bad_value
):
    folder = tmp_path_factory.mktemp("cli")
    bad = folder / "bad.cif"
    bad.write_text(_mutate(BPO4, bad_field, bad_value))
    if command == "peaks" and option == "--two-theta-step":
        option = "--two-theta-max"
    args = [command, str(bad), "U2Ti", option, value, "--out", str(folder / "out")]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse: a bad option value
        code = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err and "error:" in err[-1]
        return
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (0, 2)
    assert all(line.startswith(f"xrdnb {command}: error: ") for line in err) and len(err) <= 2
    assert (folder / "out" / f"U2Ti_{'peaks' if command == 'peaks' else 'pattern'}.csv").exists() or any(
        "U2Ti" in e for e in err
    )
