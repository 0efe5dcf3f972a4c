"""Fuzzing the two readers of untrusted input: the IDX reader and the config loader.

Each either returns valid data or raises its documented error (DataError, ConfigError),
never anything else, and the IDX reader never allocates more than the file holds. The
default run tries VAELAB_FUZZ_EXAMPLES inputs per target (default 300);
`benchmarks/faults.py` runs 50,000 per target, 100,000 in all.
"""

import gzip
import os
import struct
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import report
from vaelab.config import Config, load_toml, parse_override
from vaelab.data.idx import read_idx
from vaelab.errors import ConfigError, DataError

EXAMPLES = int(os.environ.get("VAELAB_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
MAX_FILE = 4096

# An IDX file: a header that is right, nearly right or wrong, dimensions from 0 to 2^32 - 1
# (terabytes when multiplied), and a body that may be short, exact or too long.
dims = st.lists(st.one_of(st.integers(0, 40), st.integers(0, 2 ** 32 - 1)), min_size=0,
                max_size=5)


@st.composite
def idx_files(draw) -> bytes:
    shape = draw(dims)
    magic = draw(st.one_of(st.just(bytes([0, 0, 0x08, len(shape)])), st.binary(min_size=0,
                                                                               max_size=4)))
    header = magic + b"".join(struct.pack(">I", d) for d in shape)
    declared = int(np.prod([float(d) for d in shape])) if shape else 0
    count = declared if declared <= MAX_FILE else draw(st.integers(0, 300))  # short bodies
    body = draw(st.one_of(st.binary(min_size=count, max_size=count),
                          st.binary(max_size=min(count + 8, MAX_FILE))))
    blob = draw(st.one_of(st.just(header + body), st.binary(max_size=64)))
    return gzip.compress(blob) if draw(st.booleans()) else blob


def test_idx_reader_returns_data_or_a_data_error(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    tally = {"n": 0, "valid": 0}

    @FUZZ
    @given(blob=idx_files(), gz=st.booleans())
    def check(blob, gz):
        path = folder / ("f.gz" if gz else "f")
        path.write_bytes(gzip.compress(blob) if gz else blob)
        tally["n"] += 1
        tracemalloc.start()
        try:
            array = read_idx(path)
        except DataError:
            return
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            # The reader reads in 1 MiB chunks: a few chunks at most, whatever the header says.
            assert peak < 8 * len(blob) + 4 * 2 ** 20, f"{peak} bytes for a {len(blob)}-byte file"
        assert array.dtype == np.uint8 and array.size <= len(blob)
        tally["valid"] += 1

    check()
    report("fuzz: IDX reader", tally["n"], tally["n"], valid=tally["valid"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
SECTIONS = {name: [f.name for f in __import__("dataclasses").fields(type(getattr(Config(), name)))]
            for name in ("data", "model", "objective", "train")}
sections = st.dictionaries(
    st.sampled_from([*SECTIONS, "extra"]),
    st.one_of(json_values, st.dictionaries(
        st.one_of(st.sampled_from(sorted({k for v in SECTIONS.values() for k in v})),
                  st.text(max_size=8)), json_values, max_size=6)),
    max_size=5)


def test_config_loader_returns_a_config_or_a_config_error(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzzcfg")
    tally = {"n": 0, "valid": 0}

    @FUZZ
    @given(values=sections, text=st.text(max_size=80), override=st.text(max_size=40))
    def check(values, text, override):
        tally["n"] += 1
        try:
            cfg = Config.from_dict(values)
        except ConfigError:
            pass
        else:
            assert Config.from_dict(cfg.to_dict()) == cfg
            tally["valid"] += 1
        path = folder / "c.toml"
        path.write_text(text)
        try:
            loaded = load_toml(path)
        except ConfigError:
            pass
        else:
            try:
                Config.from_dict(loaded)
            except ConfigError:
                pass
        try:
            key, value = parse_override(override)
            Config().replace({key: value})
        except ConfigError:
            pass

    check()
    report("fuzz: config loader (dict, TOML text, --set)", tally["n"], tally["n"],
           valid=tally["valid"])
