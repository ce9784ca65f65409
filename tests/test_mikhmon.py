import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.routeros.mikhmon import (
    EXPIRY_MODES,
    NO_EXPIRY,
    ProfileMeta,
    build_on_login_header,
    needs_ros7_warning,
    parse_on_login,
    uses_stock_v3_date_parsing,
    version_at_least,
)
from portal.routeros.units import MAX_DURATION, format_duration

# The shape of a stock Mikhmon v3 on-login body (Remove & Record, lock on), written for these
# tests: the date is split by fixed positions of `mmm/dd/yyyy`.
STOCK_V3_BODY = (
    '; {:local date [ /system clock get date ];:local year [ :pick $date 7 11 ];'
    ':local month [ :pick $date 0 3 ];'
    ':local comment [ /ip hotspot user get [/ip hotspot user find where name="$user"] comment];'
    ' :local ucode [:pic $comment 0 2]; :if ($ucode = "vc" or $ucode = "up" or $comment = "") do={'
    ' /sys sch add name="$user" disable=no start-date=$date interval="1d"; :delay 5s;'
    ' :local exp [ /sys sch get [ /sys sch find where name="$user" ] next-run];'
    ' /ip hotspot user set comment="$exp" [find where name="$user"]; :delay 5s;'
    ' /sys sch remove [find where name="$user"];'
    ' :local mac $"mac-address"; :local time [/system clock get time ];'
    ' /system script add'
    ' name="$date-|-$time-|-$user-|-1000-|-$address-|-$mac-|-1d-|-1jour-|-$comment"'
    ' owner="$month$year" source="$date" comment="mikhmon";'
    ' [:local mac $"mac-address"; /ip hotspot user set mac-address=$mac [find where name=$user]]}}'
)
# The same body as the RouterOS 7 forks write it: `yyyy-mm-dd` positions.
ROS7_FORK_BODY = STOCK_V3_BODY.replace(":pick $date 7 11", ":pick $date 0 4").replace(
    ":pick $date 0 3", ":pick $date 5 7"
)
# A script that copes with both date formats: it picks by v6 positions only on v6-style dates.
BOTH_FORMATS_BODY = (
    '; {:local date [ /system clock get date ]; :if ([:len $date] = 11) do={'
    ':local year [ :pick $date 7 11 ]; :local month [ :pick $date 0 3 ] } else={'
    ':local year [ :pick $date 0 4 ]; :local month [ :pick $date 5 7 ] }}'
)
STOCK_HEADER = ':put (",remc,1000,1d,1500,,Enable,")'

metas = st.one_of(
    st.builds(
        ProfileMeta,
        expmode=st.sampled_from(EXPIRY_MODES),
        price=st.integers(0, 10**9),
        validity=st.integers(1, MAX_DURATION).map(format_duration),
        selling_price=st.integers(0, 10**9),
        lock=st.booleans(),
    ),
    st.builds(
        ProfileMeta,
        expmode=st.just(NO_EXPIRY),
        price=st.integers(0, 10**9),
        validity=st.just(""),
        selling_price=st.just(0),
        lock=st.booleans(),
    ),
)


def test_parse_stock_header_with_body():
    meta = parse_on_login(STOCK_HEADER + STOCK_V3_BODY)
    assert meta == ProfileMeta("remc", 1000, "1d", 1500, True)


@pytest.mark.parametrize(
    ("script", "meta"),
    [
        (':put (",rem,1000,1d,1500,,Enable,")', ProfileMeta("rem", 1000, "1d", 1500, True)),
        (':put (",ntf,500,2h,,,Disable,")', ProfileMeta("ntf", 500, "2h", 0, False)),
        (':put (",ntfc,,30d,0,,Disable,")', ProfileMeta("ntfc", 0, "30d", 0, False)),
        (':put (",,500,,,noexp,Disable,")', ProfileMeta(NO_EXPIRY, 500, "", 0, False)),
        (
            ':put (",,,,,noexp,Enable,");'
            ' [:local mac $"mac-address"; /ip hotspot user set mac-address=$mac]',
            ProfileMeta(NO_EXPIRY, 0, "", 0, True),
        ),
        (
            '\r\n  :put ( ",rem,1000,1w,1500,,Enable," ) \n{...}',
            ProfileMeta("rem", 1000, "1w", 1500, True),
        ),
        (
            ':put (",rem,1000,1d 01:00:00,1500,,,")',
            ProfileMeta("rem", 1000, "1d 01:00:00", 1500, False),
        ),
        # mikhmon-agent writes an extra `",` before the fields; they are read at their real places.
        (
            ':put (",",rem,2000,3d,2500,,Enable,"); {...}',
            ProfileMeta("rem", 2000, "3d", 2500, True),
        ),
    ],
)
def test_parse_on_login_reads_the_header(script, meta):
    assert parse_on_login(script) == meta


@pytest.mark.parametrize(
    "script",
    [
        "",
        ":log info login",
        STOCK_V3_BODY,
        '/log info "x"; :put (",rem,1000,1d,1500,,Enable,")',  # header must come first
        ':put (",rem,1.000,1d,1500,,Enable,")',
        ':put (",rem,1000,1d,15OO,,Enable,")',
        ':put (",rem,-5,1d,0,,Enable,")',
        ':put (",rem,1000,1day,0,,Enable,")',
        ':put (",rem,1000,,0,,Enable,")',
        ':put (",rem,1000,0s,0,,Enable,")',
        ':put (",xyz,1000,1d,0,,Enable,")',
        ':put (",rem,1000,1d,0,,Yes,")',
        ':put (",rem,1,000,1d,0,,Enable,")',
        ':put (",rem,1000,1d,0,,Enable")',
        ':put (",,500,2d,,noexp,Disable,")',
        ':put (",rem,1000,1d,0,,Enable,',
        ':put (",rem,' + "9" * 40 + ',1d,0,,Enable,")',
    ],
)
def test_parse_on_login_returns_none_without_a_readable_header(script):
    assert parse_on_login(script) is None


@given(st.text())
def test_parse_on_login_never_raises(script):
    meta = parse_on_login(script)
    assert meta is None or isinstance(meta, ProfileMeta)


@given(st.text(alphabet=':put(",rem0123456789dhnoexpEnableDisable ', max_size=60))
def test_parse_on_login_never_raises_on_header_like_text(script):
    meta = parse_on_login(script)
    assert meta is None or parse_on_login(build_on_login_header(meta)) == meta


@given(metas, st.sampled_from(["", STOCK_V3_BODY, "\n"]))
def test_header_round_trips(meta, body):
    assert parse_on_login(build_on_login_header(meta) + body) == meta


def test_build_header_matches_mikhmon():
    stock = build_on_login_header(ProfileMeta("rem", 1000, "1d", 1500, True))
    assert stock == ':put (",rem,1000,1d,1500,,Enable,")'
    none = build_on_login_header(ProfileMeta(NO_EXPIRY, 500, "", 0, False))
    assert none == ':put (",,500,,,noexp,Disable,")'


@pytest.mark.parametrize(
    ("price", "selling", "sale"), [(1000, 1500, 1500), (1000, 0, 1000), (0, 0, 0)]
)
def test_sale_price_prefers_selling_price(price, selling, sale):
    assert ProfileMeta("rem", price, "1d", selling, False).sale_price == sale


@pytest.mark.parametrize(
    "args",
    [
        ("remove", 1000, "1d", 0, False),
        ("rem", -1, "1d", 0, False),
        ("rem", 1000, "", 0, False),
        ("rem", 1000, "soon", 0, False),
        (NO_EXPIRY, 1000, "1d", 0, False),
        (NO_EXPIRY, 1000, "", 1500, False),
    ],
)
def test_profile_meta_refuses_what_mikhmon_cannot_write(args):
    with pytest.raises(ValueError):
        ProfileMeta(*args)


@pytest.mark.parametrize(
    ("script", "stock"),
    [
        (STOCK_HEADER + STOCK_V3_BODY, True),
        (STOCK_HEADER + STOCK_V3_BODY.replace(":pick", ":pic"), True),
        (STOCK_HEADER + ROS7_FORK_BODY, False),
        (STOCK_HEADER + BOTH_FORMATS_BODY, False),
        (':put (",,500,,,noexp,Disable,")', False),
        ("", False),
    ],
)
def test_uses_stock_v3_date_parsing(script, stock):
    assert uses_stock_v3_date_parsing(script) is stock


@pytest.mark.parametrize(
    ("version", "major", "minor", "expected"),
    [
        ("6.49.10 (long-term)", 7, 10, False),
        ("7.9.2 (stable)", 7, 10, False),
        ("7.10 (stable)", 7, 10, True),
        ("7.16.1", 7, 10, True),
        ("7.10rc1 (testing)", 7, 10, True),
        ("8.0", 7, 10, True),
        ("6.43", 6, 43, True),
        ("6.42.12", 6, 43, False),
    ],
)
def test_version_at_least(version, major, minor, expected):
    assert version_at_least(version, major, minor) is expected


@pytest.mark.parametrize("version", ["", "stable", "v7.10", "7", "seven.ten"])
def test_version_at_least_refuses_unknown_versions(version):
    with pytest.raises(ValueError):
        version_at_least(version, 7, 10)


@pytest.mark.parametrize(
    ("version", "body", "warn"),
    [
        ("7.10 (stable)", STOCK_V3_BODY, True),
        ("7.16.1", STOCK_V3_BODY, True),
        ("6.49.10 (long-term)", STOCK_V3_BODY, False),
        ("7.9.2 (stable)", STOCK_V3_BODY, False),
        ("7.16.1", ROS7_FORK_BODY, False),
        ("", STOCK_V3_BODY, False),
    ],
)
def test_needs_ros7_warning(version, body, warn):
    assert needs_ros7_warning(version, STOCK_HEADER + body) is warn
