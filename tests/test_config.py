"""PlacerConfig: defaults, validation and Fn's JSON encoding."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnerpool import PlacerConfig
from runnerpool._config import parse_go_duration


class TestPlacerConfig:
    def test_defaults_equal_fn(self) -> None:
        """The defaults are NewPlacerConfig()'s: 10 ms, 360 s, 30 s."""
        config = PlacerConfig()
        assert (config.retry_all_delay, config.placer_timeout, config.detached_placer_timeout) == (
            0.010,
            360.0,
            30.0,
        )

    def test_frozen(self) -> None:
        """A config cannot change after it is made; variants come from dataclasses.replace."""
        config = PlacerConfig()
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.placer_timeout = 1.0  # type: ignore[misc]
        assert dataclasses.replace(config, placer_timeout=1).placer_timeout == 1.0

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"retry_all_delay": -0.001}, "retry_all_delay"),
            ({"placer_timeout": float("nan")}, "placer_timeout"),
            ({"detached_placer_timeout": "30s"}, "detached_placer_timeout"),
            ({"placer_timeout": True}, "placer_timeout"),
        ],
    )
    def test_bad_values_name_the_field(self, kwargs: dict[str, object], field: str) -> None:
        """A negative, non-finite or non-numeric value is refused, naming the field."""
        with pytest.raises(ValueError, match=field):
            PlacerConfig(**kwargs)  # type: ignore[arg-type]


class TestJson:
    def test_to_json_is_fn_encoding(self) -> None:
        """to_json writes Go's integer nanoseconds with Fn's keys, in Go's field order."""
        assert PlacerConfig().to_json() == (
            '{"retry_all_delay":10000000,"placer_timeout":360000000000,'
            '"detached_placer_timeout":30000000000}'
        )

    def test_reads_nanoseconds_and_strings(self) -> None:
        """from_json reads Go integer nanoseconds and Go duration strings."""
        config = PlacerConfig.from_json(
            '{"retry_all_delay": "10ms", "placer_timeout": "1m30s",'
            ' "detached_placer_timeout": 2500000000}'
        )
        assert config == PlacerConfig(0.01, 90.0, 2.5)

    def test_missing_keys_keep_defaults(self) -> None:
        """Keys left out keep Fn's defaults."""
        assert PlacerConfig.from_json('{"placer_timeout": "2s"}') == PlacerConfig(placer_timeout=2)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"placer_timeout": -1}', "placer_timeout"),
            ('{"placer_timeout": "-1s"}', "placer_timeout"),
            ('{"retry_all_delay": "10 parsecs"}', "retry_all_delay"),
            ('{"retry_all_delay": "10d"}', "unknown unit 'd'"),
            ('{"detached_placer_timeout": 1.5}', "detached_placer_timeout"),
            ('{"detached_placer_timeout": null}', "detached_placer_timeout"),
            ('{"placer_timout": 1}', "placer_timout"),
            ("[1]", "JSON object"),
            ("{", "not valid JSON"),
        ],
    )
    def test_bad_json_is_refused_clearly(self, text: str, message: str) -> None:
        """Negative values, wrong types, unknown units or keys raise ValueError naming them."""
        with pytest.raises(ValueError, match=message):
            PlacerConfig.from_json(text)

    @given(
        st.integers(min_value=0, max_value=10**14), st.integers(0, 10**12), st.integers(0, 10**9)
    )
    def test_round_trip_of_fn_json(self, a: int, b: int, c: int) -> None:
        """Any nanosecond values Fn writes survive a read and a write unchanged."""
        text = json.dumps({"retry_all_delay": a, "placer_timeout": b, "detached_placer_timeout": c})
        config = PlacerConfig.from_json(text)
        assert json.loads(config.to_json()) == json.loads(text)
        assert PlacerConfig.from_json(config.to_json()) == config


class TestGoDurations:
    @pytest.mark.parametrize(
        ("text", "nanoseconds"),
        [
            ("0", 0),
            ("10ms", 10_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300us", 300_000),
            ("300\u00b5s", 300_000),
            ("300\u03bcs", 300_000),
            ("1ns", 1),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("2h45m0.5s", 9_900_500_000_000),
            ("-3s", -3_000_000_000),
            ("+3s", 3_000_000_000),
            ("1.0000000009s", 1_000_000_000),
        ],
    )
    def test_parses_like_go(self, text: str, nanoseconds: int) -> None:
        """Go's time.ParseDuration grammar, units and truncation."""
        assert parse_go_duration(text) == nanoseconds

    @pytest.mark.parametrize("text", ["", "-", "10", "s", "1.2.3s", "1 s", "5x"])
    def test_rejects_what_go_rejects(self, text: str) -> None:
        """Malformed durations raise ValueError."""
        with pytest.raises(ValueError, match=r"duration|unit"):
            parse_go_duration(text)


class TestBackoffConfig:
    def test_backoff_fields_are_keyword_only(self) -> None:
        """The back-off fields follow Fn's three and are keyword only: positions stay Fn's."""
        config = PlacerConfig(0.02, 5, 1, backoff="exponential", backoff_max_delay=0.5)
        assert (config.backoff, config.backoff_max_delay) == ("exponential", 0.5)
        with pytest.raises(TypeError):
            PlacerConfig(0.02, 5, 1, "exponential")  # type: ignore[call-arg]

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"backoff": "linear"}, "backoff"),
            ({"backoff": "Exponential"}, "backoff"),
            ({"backoff": None}, "backoff"),
            ({"backoff_max_delay": -1}, "backoff_max_delay"),
            ({"backoff_max_delay": float("inf")}, "backoff_max_delay"),
            ({"backoff_max_delay": "1s"}, "backoff_max_delay"),
        ],
    )
    def test_bad_backoff_values_name_the_field(self, kwargs: dict[str, object], field: str) -> None:
        """An unknown mode or a bad cap is refused, naming the field."""
        with pytest.raises(ValueError, match=field):
            PlacerConfig(**kwargs)  # type: ignore[arg-type]

    def test_to_json_adds_only_non_default_backoff_keys(self) -> None:
        """The back-off keys follow Fn's three, and only when they differ from the defaults."""
        fn = (
            '{"retry_all_delay":10000000,"placer_timeout":360000000000,'
            '"detached_placer_timeout":30000000000'
        )
        assert PlacerConfig(backoff="exponential").to_json() == fn + ',"backoff":"exponential"}'
        assert (
            PlacerConfig(backoff="exponential", backoff_max_delay=0.25).to_json()
            == fn + ',"backoff":"exponential","backoff_max_delay":250000000}'
        )
        assert PlacerConfig(backoff="fixed", backoff_max_delay=1).to_json() == fn + "}"

    def test_reads_backoff_keys(self) -> None:
        """from_json reads the mode as a string and the cap as nanoseconds or a duration."""
        expected = PlacerConfig(backoff="exponential", backoff_max_delay=0.25)
        assert (
            PlacerConfig.from_json('{"backoff": "exponential", "backoff_max_delay": "250ms"}')
            == expected
        )
        assert (
            PlacerConfig.from_json('{"backoff": "exponential", "backoff_max_delay": 250000000}')
            == expected
        )

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"backoff": "linear"}', "backoff"),
            ('{"backoff": 1}', "backoff"),
            ('{"backoff": null}', "backoff"),
            ('{"backoff_max_delay": -1}', "backoff_max_delay"),
            ('{"backoff_max_delay": "1 fortnight"}', "backoff_max_delay"),
            ('{"backoff_max_delay": 0.5}', "backoff_max_delay"),
            ('{"backof": "fixed"}', "backof"),
        ],
    )
    def test_bad_backoff_json_is_refused_clearly(self, text: str, message: str) -> None:
        """A bad mode, a bad cap or a misspelt key raises ValueError naming it."""
        with pytest.raises(ValueError, match=message):
            PlacerConfig.from_json(text)

    @given(
        st.integers(0, 10**12),
        st.sampled_from(["fixed", "exponential"]),
        st.integers(0, 10**12),
    )
    def test_round_trip_with_backoff(self, delay: int, mode: str, cap: int) -> None:
        """Any back-off settings survive a write and a read unchanged."""
        text = json.dumps({"retry_all_delay": delay, "backoff": mode, "backoff_max_delay": cap})
        config = PlacerConfig.from_json(text)
        assert PlacerConfig.from_json(config.to_json()) == config
        assert json.loads(config.to_json())["retry_all_delay"] == delay


class TestReleaseAndFactorConfig:
    def test_defaults(self) -> None:
        """The release hold is 1 s and the bounded-load factor 1.25; neither is in Fn's JSON."""
        config = PlacerConfig()
        assert (config.release_hold, config.bounded_load_factor) == (1.0, 1.25)
        assert "release_hold" not in config.to_json()
        assert "bounded_load_factor" not in config.to_json()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"bounded_load_factor": 0.99}, "bounded_load_factor must be finite and >= 1"),
            ({"bounded_load_factor": math.inf}, "bounded_load_factor must be finite"),
            ({"bounded_load_factor": math.nan}, "bounded_load_factor must be finite"),
            ({"bounded_load_factor": True}, "bounded_load_factor must be a number, not bool"),
            ({"bounded_load_factor": "2"}, "bounded_load_factor must be a number, not str"),
            ({"release_hold": -1.0}, "release_hold must be finite and >= 0"),
            ({"backoff": "poll"}, "backoff must be one of fixed, exponential, release"),
        ],
    )
    def test_bad_values_name_the_field(self, kwargs: dict[str, object], message: str) -> None:
        """Each invalid value is refused with the field's name."""
        with pytest.raises(ValueError, match=message):
            PlacerConfig(**kwargs)  # type: ignore[arg-type]

    def test_json_round_trip(self) -> None:
        """The factor is a plain JSON number, the hold a Go duration; both read back."""
        config = PlacerConfig(backoff="release", release_hold=0.25, bounded_load_factor=1.5)
        text = config.to_json()
        assert text.endswith(
            ',"backoff":"release","release_hold":250000000,"bounded_load_factor":1.5}'
        )
        assert PlacerConfig.from_json(text) == config
        assert PlacerConfig.from_json('{"bounded_load_factor": 2, "release_hold": "50ms"}') == (
            PlacerConfig(bounded_load_factor=2.0, release_hold=0.05)
        )

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"bounded_load_factor": "1.5"}', "'bounded_load_factor' must be a number, not str"),
            ('{"bounded_load_factor": true}', "'bounded_load_factor' must be a number, not bool"),
            ('{"bounded_load_factor": 0.5}', "bounded_load_factor must be finite and >= 1"),
            ('{"release_hold": 1.5}', "'release_hold' must be integer nanoseconds"),
        ],
    )
    def test_bad_json_is_refused_clearly(self, text: str, message: str) -> None:
        """Bad values in JSON are refused with the field's name."""
        with pytest.raises(ValueError, match=message):
            PlacerConfig.from_json(text)


class TestFifoConfig:
    def test_fifo_mode_and_queue_limit_round_trip(self) -> None:
        """The fifo mode and its integer queue limit are written only when set, and read back."""
        assert PlacerConfig().queue_limit == 1024
        assert "queue_limit" not in PlacerConfig().to_json()
        config = PlacerConfig(backoff="fifo", queue_limit=64)
        text = config.to_json()
        assert text.endswith(',"backoff":"fifo","queue_limit":64}')
        assert PlacerConfig.from_json(text) == config
        assert isinstance(PlacerConfig.from_json('{"queue_limit": 8.0}').queue_limit, int)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"queue_limit": 0}, "queue_limit must be >= 1"),
            ({"queue_limit": 2.5}, "queue_limit must be a whole number"),
            ({"queue_limit": math.inf}, "queue_limit must be a whole number"),
            ({"queue_limit": True}, "queue_limit must be a number, not bool"),
        ],
    )
    def test_bad_queue_limits_name_the_field(self, kwargs: dict[str, object], message: str) -> None:
        """A queue limit below 1 or not whole is refused with the field's name."""
        with pytest.raises(ValueError, match=message):
            PlacerConfig(**kwargs)  # type: ignore[arg-type]
