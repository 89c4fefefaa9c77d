#!/usr/bin/env python3
"""Check server/src/messages/zones_data.rs against PyPI data.

Sources: `zipcodes` (bundled US ZIP list with an IANA `timezone` per ZIP and
`area_codes` per ZIP) and `phonenumbers` (libphonenumber's per-prefix
time-zone metadata). Prints every prefix and area code where the table and the
data disagree, or that one has and the other lacks. Run from the repository:

    python3 -m venv /tmp/zonecheck
    /tmp/zonecheck/bin/pip install zipcodes==3.0.0 phonenumbers==9.0.43
    /tmp/zonecheck/bin/python tools/check_zones.py
"""
import collections
import re
import sys
from importlib.metadata import version

import phonenumbers
import zipcodes
from phonenumbers import timezone as pn_tz
from phonenumbers.tzdata import TIMEZONE_DATA

RS = sys.argv[1] if len(sys.argv) > 1 else "server/src/messages/zones_data.rs"

E_, C_ = "E", "C"


def zone_of(tz):
    """IANA name -> table enum abbreviation; '?'+name when outside the enum."""
    if tz in ("America/New_York", "America/Detroit") or tz.startswith("America/Kentucky/"):
        return "E"
    if tz in ("America/Indiana/Knox", "America/Indiana/Tell_City"):
        return "C"
    if tz.startswith("America/Indiana/"):
        return "E"
    if tz in ("America/Chicago", "America/Menominee") or tz.startswith("America/North_Dakota/"):
        return "C"
    if tz in ("America/Denver", "America/Boise"):
        return "M"
    if tz == "America/Phoenix":
        return "AZ"
    if tz == "America/Los_Angeles":
        return "P"
    if tz in ("America/Anchorage", "America/Juneau", "America/Sitka", "America/Nome",
              "America/Yakutat", "America/Metlakatla"):
        return "AK"
    if tz == "Pacific/Honolulu":
        return "HI"
    if tz in ("America/Puerto_Rico", "America/St_Thomas"):
        return "PR"
    if tz in ("Pacific/Guam", "Pacific/Saipan"):
        return "GU"
    if tz == "Pacific/Pago_Pago":
        return "SM"
    return "?" + tz  # America/Adak, Pacific/Palau, Pacific/Chuuk, junk, ...


# ---------------------------------------------------------------- parse table
src = open(RS).read()


def section(name):
    start = src.index("const " + name)
    return src[start:src.index("\n];", start)]


zip3_table = {}
for lo, hi, z in re.findall(r"\(\s*(\d+),\s*(\d+),\s*(\w+)\s*\)", section("ZIP3_RANGES")):
    for p in range(int(lo), int(hi) + 1):
        assert p not in zip3_table, p
        zip3_table[p] = z
overrides = {}
for lo, hi, z in re.findall(r"\(\s*(\d+),\s*(\d+),\s*(Some\(\w+\)|None)\s*\)",
                            section("ZIP5_OVERRIDES")):
    zz = None if z == "None" else z[5:-1]
    for zc in range(int(lo), int(hi) + 1):
        overrides[zc] = zz
area_table = {}
for z, codes in re.findall(r"\(\s*(\w+),\s*&\[([\d,\s]+)\]", section("AREA_CODES")):
    for c in re.findall(r"\d+", codes):
        assert int(c) not in area_table, c
        area_table[int(c)] = z


def table_zone_for_zip(zc):
    if int(zc) in overrides:
        return overrides[int(zc)] or "-"
    return zip3_table.get(int(zc[:3]), "-")


print(f"phonenumbers {version('phonenumbers')}, zipcodes {version('zipcodes')}")
print(f"table: {len(zip3_table)} ZIP3 prefixes, {len(overrides)} ZIP5 overrides, "
      f"{len(area_table)} area codes\n")

# ---------------------------------------------------------------------- ZIP3
allzips = zipcodes.list_all()
by3 = collections.defaultdict(collections.Counter)
by3_examples = collections.defaultdict(lambda: collections.defaultdict(list))
military = set()
for r in allzips:
    p = int(r["zip_code"][:3])
    if r["zip_code_type"] == "MILITARY" or not r["timezone"]:
        military.add(p)
        continue
    z = zone_of(r["timezone"])
    by3[p][z] += 1
    if len(by3_examples[p][z]) < 4:
        by3_examples[p][z].append(f'{r["zip_code"]} {r["city"]} {r["state"]}')

print("== ZIP3: prefixes where the table differs from the majority (by ZIP count)")
n_diff = 0
for p in sorted(by3):
    cnt = by3[p]
    maj, _ = cnt.most_common(1)[0]
    tab = zip3_table.get(p)
    if tab is not None and tab != maj:
        n_diff += 1
        print(f"  {p:03d}: table {tab}, data {dict(cnt)} e.g. {dict(by3_examples[p])}")
print(f"  ({n_diff})")

print("== ZIP3: split prefixes (more than one zone), table agrees with majority")
for p in sorted(by3):
    cnt = by3[p]
    if len(cnt) > 1 and zip3_table.get(p) == cnt.most_common(1)[0][0]:
        minor = {z: by3_examples[p][z] for z in cnt if z != zip3_table.get(p)}
        print(f"  {p:03d}: table {zip3_table[p]}, data {dict(cnt)} minority e.g. {minor}")

print("== ZIP3: in the table, not in the data")
print("  ", [f"{p:03d}" for p in sorted(set(zip3_table) - set(by3))])
print("== ZIP3: in the data, not in the table")
for p in sorted(set(by3) - set(zip3_table)):
    print(f"  {p:03d}: {dict(by3[p])} e.g. {dict(by3_examples[p])}")
print("== ZIP3: military-only prefixes in the data:", sorted(military - set(by3)))
print("   table prefixes that the data calls military:",
      sorted(set(zip3_table) & (military - set(by3))))

print("== ZIP5: overrides vs data")
zipmap = {r["zip_code"]: r for r in allzips}
for zc, z in sorted(overrides.items()):
    r = zipmap.get(f"{zc:05d}")
    print(f"  {zc:05d}: table {z}, data "
          f"{(r['timezone'], zone_of(r['timezone']), r['city'], r['state']) if r else 'absent'}")
print("== ZIP5: single ZIPs whose data zone differs from the table's (excluding majority-rule "
      "minorities counted above) — non-enum zones only")
for r in allzips:
    if r["timezone"] and zone_of(r["timezone"]).startswith("?"):
        print(f"  {r['zip_code']} {r['city']} {r['state']}: {r['timezone']}, table "
              f"{table_zone_for_zip(r['zip_code'])}")

# --------------------------------------------------------------- area codes
US_REGIONS = {"US", "PR", "VI", "GU", "AS", "MP"}


def npa_region(npa):
    """Region of an NPA, and whether any number in it is valid."""
    region = None
    for nxx in (222, 234, 256, 555, 201, 321, 456, 622, 789, 988, 300, 400, 500):
        n = phonenumbers.parse(f"+1{npa}{nxx}0100")
        if phonenumbers.is_valid_number(n):
            return phonenumbers.region_code_for_number(n), True
        region = region or phonenumbers.region_code_for_number(n)
    return region, False


def tz_longest(digits):
    # Only prefixes at least as long as "1NPA" (or "1NP" + first NXX digit)
    # count: the bare "1" key lists every NANP zone and says nothing.
    for k in range(len(digits), 4, -1):
        if digits[:k] in TIMEZONE_DATA:
            return TIMEZONE_DATA[digits[:k]]
    return TIMEZONE_DATA.get(digits[:4], ("none",))


pn = {}  # npa -> (region, default zones, Counter over NXX)
for npa in range(200, 1000):
    region, valid = npa_region(npa)
    if not valid or region not in US_REGIONS:
        pn[npa] = (region, valid, None, None)
        continue
    default = TIMEZONE_DATA.get(f"1{npa}", ("none",))
    nxx_cnt = collections.Counter()
    for nxx in range(200, 1000):
        zs = {zone_of(t) for t in tz_longest(f"1{npa}{nxx}")}
        nxx_cnt["/".join(sorted(zs))] += 1
    pn[npa] = (region, valid, tuple(zone_of(t) for t in default), nxx_cnt)

# zipcodes' own area_codes field: npa -> Counter(zone) over ZIPs listing it
zip_ac = collections.defaultdict(collections.Counter)
for r in allzips:
    if r["timezone"]:
        for ac in r.get("area_codes") or []:
            if ac.isdigit():
                zip_ac[int(ac)][zone_of(r["timezone"])] += 1

us_npas = sorted(n for n, v in pn.items() if v[1] and v[0] in US_REGIONS)
print(f"\n== Area codes: {len(us_npas)} valid US/territory NPAs in phonenumbers")


def verdict(npa):
    region, _, default, nxx = pn[npa]
    nxx_major = nxx.most_common(1)[0][0]
    zc = zip_ac.get(npa)
    zc_major = zc.most_common(1)[0][0] if zc else None
    return default, nxx_major, zc_major


print("== Area codes: table differs from a source (default = phonenumbers NPA-level zone; "
      "nxx = majority over NXX 200-999 by phonenumbers; zip = majority over zipcodes ZIPs "
      "listing the code)")
for npa in us_npas:
    default, nxx_major, zc_major = verdict(npa)
    tab = area_table.get(npa)
    if tab is None:
        continue
    flags = []
    if default != ("none",) and default != (tab,):
        flags.append("default")
    if nxx_major != tab:
        flags.append("nxx")
    if zc_major is not None and zc_major != tab:
        flags.append("zip")
    if flags:
        print(f"  {npa} ({pn[npa][0]}): table {tab}; differs in {flags}: default {default}, "
              f"nxx {dict(pn[npa][3])}, zip {dict(zip_ac.get(npa, {}))}")

print("== Area codes: split per phonenumbers or zipcodes (table agrees everywhere)")
for npa in us_npas:
    default, nxx_major, zc_major = verdict(npa)
    tab = area_table.get(npa)
    if tab is None:
        continue
    if (len(pn[npa][3]) > 1 or len(zip_ac.get(npa, {})) > 1) and default == (tab,) \
            and nxx_major == tab and zc_major in (None, tab):
        print(f"  {npa}: table {tab}; nxx {dict(pn[npa][3])}, zip {dict(zip_ac.get(npa, {}))}")

print("== Area codes: US in phonenumbers, missing from the table (non-geographic ones "
      "with no time-zone data in either source are skipped)")
for npa in us_npas:
    if npa not in area_table:
        default, nxx_major, zc_major = verdict(npa)
        if nxx_major == "?none" and npa not in zip_ac:
            continue  # no geographic data anywhere: non-geographic (5XX, 8YY, 900...)
        print(f"  {npa} ({pn[npa][0]}): default {default}, nxx {dict(pn[npa][3])}, "
              f"zip {dict(zip_ac.get(npa, {}))}")

print("== Area codes: in the table, not a valid US/territory NPA in phonenumbers")
for npa in sorted(area_table):
    if npa not in us_npas:
        print(f"  {npa}: table {area_table[npa]}, phonenumbers region {pn[npa][0]} "
              f"valid={pn[npa][1]}, zip {dict(zip_ac.get(npa, {}))}")
