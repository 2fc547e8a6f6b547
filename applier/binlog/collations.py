"""Collations across flavors: a logged statement's session collations (character_set_client,
collation_connection, collation_server: ids in the Query event) on a target of the other
flavor.

Ids both flavors have mean the same collation (MySQL renamed nothing MariaDB kept under
another name, except the *_croatian_ci of MySQL 5.6.1, which MariaDB calls
*_croatian_mysql561_ci under the same ids), so they are used as they are. An id only
the source's flavor has (MySQL's utf8mb4_0900_* and gb18030; MariaDB's uca1400, nopad
and a few others: ``MYSQL_ONLY`` / ``MARIADB_ONLY``, read from MySQL 9.7 and MariaDB
10.11) is set by name: its own name when the target has it (MariaDB 11.4 knows
utf8mb4_0900_ai_ci), else the target's equivalent (``equivalent``): MySQL's UCA 9.0
collations are NO PAD, so utf8mb4_0900_ai_ci becomes utf8mb4_uca1400_nopad_ai_ci
(accent and case insensitive, trailing spaces significant, like the source's), the
language ones utf8mb4_uca1400_<language>_nopad_*, utf8mb4_0900_bin utf8mb4_nopad_bin;
the other way the UCA 14.0 collations become MySQL's 0900 ones. A collation without an
equivalent is an error naming it (``CollationError``), before the statement runs.
"""

from __future__ import annotations

import re

from ..errors import SchemaError


class CollationError(SchemaError):
    """A source collation the target has no equivalent of."""


def _table(text: str) -> dict[int, str]:
    return {int(i): n for i, n in (item.split(":") for item in text.split())}


# MySQL 9.7 collations MariaDB 10.11 does not have (by id)
MYSQL_ONLY = _table("""
    76:utf8mb3_tolower_ci 248:gb18030_chinese_ci 249:gb18030_bin 250:gb18030_unicode_520_ci
    255:utf8mb4_0900_ai_ci 256:utf8mb4_de_pb_0900_ai_ci 257:utf8mb4_is_0900_ai_ci
    258:utf8mb4_lv_0900_ai_ci 259:utf8mb4_ro_0900_ai_ci 260:utf8mb4_sl_0900_ai_ci
    261:utf8mb4_pl_0900_ai_ci 262:utf8mb4_et_0900_ai_ci 263:utf8mb4_es_0900_ai_ci
    264:utf8mb4_sv_0900_ai_ci 265:utf8mb4_tr_0900_ai_ci 266:utf8mb4_cs_0900_ai_ci
    267:utf8mb4_da_0900_ai_ci 268:utf8mb4_lt_0900_ai_ci 269:utf8mb4_sk_0900_ai_ci
    270:utf8mb4_es_trad_0900_ai_ci 271:utf8mb4_la_0900_ai_ci 273:utf8mb4_eo_0900_ai_ci
    274:utf8mb4_hu_0900_ai_ci 275:utf8mb4_hr_0900_ai_ci 277:utf8mb4_vi_0900_ai_ci
    278:utf8mb4_0900_as_cs 279:utf8mb4_de_pb_0900_as_cs 280:utf8mb4_is_0900_as_cs
    281:utf8mb4_lv_0900_as_cs 282:utf8mb4_ro_0900_as_cs 283:utf8mb4_sl_0900_as_cs
    284:utf8mb4_pl_0900_as_cs 285:utf8mb4_et_0900_as_cs 286:utf8mb4_es_0900_as_cs
    287:utf8mb4_sv_0900_as_cs 288:utf8mb4_tr_0900_as_cs 289:utf8mb4_cs_0900_as_cs
    290:utf8mb4_da_0900_as_cs 291:utf8mb4_lt_0900_as_cs 292:utf8mb4_sk_0900_as_cs
    293:utf8mb4_es_trad_0900_as_cs 294:utf8mb4_la_0900_as_cs 296:utf8mb4_eo_0900_as_cs
    297:utf8mb4_hu_0900_as_cs 298:utf8mb4_hr_0900_as_cs 300:utf8mb4_vi_0900_as_cs
    303:utf8mb4_ja_0900_as_cs 304:utf8mb4_ja_0900_as_cs_ks 305:utf8mb4_0900_as_ci
    306:utf8mb4_ru_0900_ai_ci 307:utf8mb4_ru_0900_as_cs 308:utf8mb4_zh_0900_as_cs
    309:utf8mb4_0900_bin 310:utf8mb4_nb_0900_ai_ci 311:utf8mb4_nb_0900_as_cs
    312:utf8mb4_nn_0900_ai_ci 313:utf8mb4_nn_0900_as_cs 314:utf8mb4_sr_latn_0900_ai_ci
    315:utf8mb4_sr_latn_0900_as_cs 316:utf8mb4_bs_0900_ai_ci 317:utf8mb4_bs_0900_as_cs
    318:utf8mb4_bg_0900_ai_ci 319:utf8mb4_bg_0900_as_cs 320:utf8mb4_gl_0900_ai_ci
    321:utf8mb4_gl_0900_as_cs 322:utf8mb4_mn_cyrl_0900_ai_ci 323:utf8mb4_mn_cyrl_0900_as_cs
""")

# MariaDB 10.11 utf8mb4 (and low-id utf8mb3) collations MySQL 9.7 does not have (by id)
MARIADB_ONLY = _table("""
    576:utf8mb3_croatian_ci 577:utf8mb3_myanmar_ci 578:utf8mb3_thai_520_w2
    608:utf8mb4_croatian_ci 609:utf8mb4_myanmar_ci 610:utf8mb4_thai_520_w2
    1057:utf8mb3_general_nopad_ci 1069:utf8mb4_general_nopad_ci 1070:utf8mb4_nopad_bin
    1107:utf8mb3_nopad_bin 1216:utf8mb3_unicode_nopad_ci 1238:utf8mb3_unicode_520_nopad_ci
    1248:utf8mb4_unicode_nopad_ci 1270:utf8mb4_unicode_520_nopad_ci 2304:utf8mb4_uca1400_ai_ci
    2305:utf8mb4_uca1400_ai_cs 2306:utf8mb4_uca1400_as_ci 2307:utf8mb4_uca1400_as_cs
    2308:utf8mb4_uca1400_nopad_ai_ci 2309:utf8mb4_uca1400_nopad_ai_cs
    2310:utf8mb4_uca1400_nopad_as_ci 2311:utf8mb4_uca1400_nopad_as_cs
    2312:utf8mb4_uca1400_icelandic_ai_ci 2313:utf8mb4_uca1400_icelandic_ai_cs
    2314:utf8mb4_uca1400_icelandic_as_ci 2315:utf8mb4_uca1400_icelandic_as_cs
    2316:utf8mb4_uca1400_icelandic_nopad_ai_ci 2317:utf8mb4_uca1400_icelandic_nopad_ai_cs
    2318:utf8mb4_uca1400_icelandic_nopad_as_ci 2319:utf8mb4_uca1400_icelandic_nopad_as_cs
    2320:utf8mb4_uca1400_latvian_ai_ci 2321:utf8mb4_uca1400_latvian_ai_cs
    2322:utf8mb4_uca1400_latvian_as_ci 2323:utf8mb4_uca1400_latvian_as_cs
    2324:utf8mb4_uca1400_latvian_nopad_ai_ci 2325:utf8mb4_uca1400_latvian_nopad_ai_cs
    2326:utf8mb4_uca1400_latvian_nopad_as_ci 2327:utf8mb4_uca1400_latvian_nopad_as_cs
    2328:utf8mb4_uca1400_romanian_ai_ci 2329:utf8mb4_uca1400_romanian_ai_cs
    2330:utf8mb4_uca1400_romanian_as_ci 2331:utf8mb4_uca1400_romanian_as_cs
    2332:utf8mb4_uca1400_romanian_nopad_ai_ci 2333:utf8mb4_uca1400_romanian_nopad_ai_cs
    2334:utf8mb4_uca1400_romanian_nopad_as_ci 2335:utf8mb4_uca1400_romanian_nopad_as_cs
    2336:utf8mb4_uca1400_slovenian_ai_ci 2337:utf8mb4_uca1400_slovenian_ai_cs
    2338:utf8mb4_uca1400_slovenian_as_ci 2339:utf8mb4_uca1400_slovenian_as_cs
    2340:utf8mb4_uca1400_slovenian_nopad_ai_ci 2341:utf8mb4_uca1400_slovenian_nopad_ai_cs
    2342:utf8mb4_uca1400_slovenian_nopad_as_ci 2343:utf8mb4_uca1400_slovenian_nopad_as_cs
    2344:utf8mb4_uca1400_polish_ai_ci 2345:utf8mb4_uca1400_polish_ai_cs
    2346:utf8mb4_uca1400_polish_as_ci 2347:utf8mb4_uca1400_polish_as_cs
    2348:utf8mb4_uca1400_polish_nopad_ai_ci 2349:utf8mb4_uca1400_polish_nopad_ai_cs
    2350:utf8mb4_uca1400_polish_nopad_as_ci 2351:utf8mb4_uca1400_polish_nopad_as_cs
    2352:utf8mb4_uca1400_estonian_ai_ci 2353:utf8mb4_uca1400_estonian_ai_cs
    2354:utf8mb4_uca1400_estonian_as_ci 2355:utf8mb4_uca1400_estonian_as_cs
    2356:utf8mb4_uca1400_estonian_nopad_ai_ci 2357:utf8mb4_uca1400_estonian_nopad_ai_cs
    2358:utf8mb4_uca1400_estonian_nopad_as_ci 2359:utf8mb4_uca1400_estonian_nopad_as_cs
    2360:utf8mb4_uca1400_spanish_ai_ci 2361:utf8mb4_uca1400_spanish_ai_cs
    2362:utf8mb4_uca1400_spanish_as_ci 2363:utf8mb4_uca1400_spanish_as_cs
    2364:utf8mb4_uca1400_spanish_nopad_ai_ci 2365:utf8mb4_uca1400_spanish_nopad_ai_cs
    2366:utf8mb4_uca1400_spanish_nopad_as_ci 2367:utf8mb4_uca1400_spanish_nopad_as_cs
    2368:utf8mb4_uca1400_swedish_ai_ci 2369:utf8mb4_uca1400_swedish_ai_cs
    2370:utf8mb4_uca1400_swedish_as_ci 2371:utf8mb4_uca1400_swedish_as_cs
    2372:utf8mb4_uca1400_swedish_nopad_ai_ci 2373:utf8mb4_uca1400_swedish_nopad_ai_cs
    2374:utf8mb4_uca1400_swedish_nopad_as_ci 2375:utf8mb4_uca1400_swedish_nopad_as_cs
    2376:utf8mb4_uca1400_turkish_ai_ci 2377:utf8mb4_uca1400_turkish_ai_cs
    2378:utf8mb4_uca1400_turkish_as_ci 2379:utf8mb4_uca1400_turkish_as_cs
    2380:utf8mb4_uca1400_turkish_nopad_ai_ci 2381:utf8mb4_uca1400_turkish_nopad_ai_cs
    2382:utf8mb4_uca1400_turkish_nopad_as_ci 2383:utf8mb4_uca1400_turkish_nopad_as_cs
    2384:utf8mb4_uca1400_czech_ai_ci 2385:utf8mb4_uca1400_czech_ai_cs
    2386:utf8mb4_uca1400_czech_as_ci 2387:utf8mb4_uca1400_czech_as_cs
    2388:utf8mb4_uca1400_czech_nopad_ai_ci 2389:utf8mb4_uca1400_czech_nopad_ai_cs
    2390:utf8mb4_uca1400_czech_nopad_as_ci 2391:utf8mb4_uca1400_czech_nopad_as_cs
    2392:utf8mb4_uca1400_danish_ai_ci 2393:utf8mb4_uca1400_danish_ai_cs
    2394:utf8mb4_uca1400_danish_as_ci 2395:utf8mb4_uca1400_danish_as_cs
    2396:utf8mb4_uca1400_danish_nopad_ai_ci 2397:utf8mb4_uca1400_danish_nopad_ai_cs
    2398:utf8mb4_uca1400_danish_nopad_as_ci 2399:utf8mb4_uca1400_danish_nopad_as_cs
    2400:utf8mb4_uca1400_lithuanian_ai_ci 2401:utf8mb4_uca1400_lithuanian_ai_cs
    2402:utf8mb4_uca1400_lithuanian_as_ci 2403:utf8mb4_uca1400_lithuanian_as_cs
    2404:utf8mb4_uca1400_lithuanian_nopad_ai_ci 2405:utf8mb4_uca1400_lithuanian_nopad_ai_cs
    2406:utf8mb4_uca1400_lithuanian_nopad_as_ci 2407:utf8mb4_uca1400_lithuanian_nopad_as_cs
    2408:utf8mb4_uca1400_slovak_ai_ci 2409:utf8mb4_uca1400_slovak_ai_cs
    2410:utf8mb4_uca1400_slovak_as_ci 2411:utf8mb4_uca1400_slovak_as_cs
    2412:utf8mb4_uca1400_slovak_nopad_ai_ci 2413:utf8mb4_uca1400_slovak_nopad_ai_cs
    2414:utf8mb4_uca1400_slovak_nopad_as_ci 2415:utf8mb4_uca1400_slovak_nopad_as_cs
    2416:utf8mb4_uca1400_spanish2_ai_ci 2417:utf8mb4_uca1400_spanish2_ai_cs
    2418:utf8mb4_uca1400_spanish2_as_ci 2419:utf8mb4_uca1400_spanish2_as_cs
    2420:utf8mb4_uca1400_spanish2_nopad_ai_ci 2421:utf8mb4_uca1400_spanish2_nopad_ai_cs
    2422:utf8mb4_uca1400_spanish2_nopad_as_ci 2423:utf8mb4_uca1400_spanish2_nopad_as_cs
    2424:utf8mb4_uca1400_roman_ai_ci 2425:utf8mb4_uca1400_roman_ai_cs
    2426:utf8mb4_uca1400_roman_as_ci 2427:utf8mb4_uca1400_roman_as_cs
    2428:utf8mb4_uca1400_roman_nopad_ai_ci 2429:utf8mb4_uca1400_roman_nopad_ai_cs
    2430:utf8mb4_uca1400_roman_nopad_as_ci 2431:utf8mb4_uca1400_roman_nopad_as_cs
    2432:utf8mb4_uca1400_persian_ai_ci 2433:utf8mb4_uca1400_persian_ai_cs
    2434:utf8mb4_uca1400_persian_as_ci 2435:utf8mb4_uca1400_persian_as_cs
    2436:utf8mb4_uca1400_persian_nopad_ai_ci 2437:utf8mb4_uca1400_persian_nopad_ai_cs
    2438:utf8mb4_uca1400_persian_nopad_as_ci 2439:utf8mb4_uca1400_persian_nopad_as_cs
    2440:utf8mb4_uca1400_esperanto_ai_ci 2441:utf8mb4_uca1400_esperanto_ai_cs
    2442:utf8mb4_uca1400_esperanto_as_ci 2443:utf8mb4_uca1400_esperanto_as_cs
    2444:utf8mb4_uca1400_esperanto_nopad_ai_ci 2445:utf8mb4_uca1400_esperanto_nopad_ai_cs
    2446:utf8mb4_uca1400_esperanto_nopad_as_ci 2447:utf8mb4_uca1400_esperanto_nopad_as_cs
    2448:utf8mb4_uca1400_hungarian_ai_ci 2449:utf8mb4_uca1400_hungarian_ai_cs
    2450:utf8mb4_uca1400_hungarian_as_ci 2451:utf8mb4_uca1400_hungarian_as_cs
    2452:utf8mb4_uca1400_hungarian_nopad_ai_ci 2453:utf8mb4_uca1400_hungarian_nopad_ai_cs
    2454:utf8mb4_uca1400_hungarian_nopad_as_ci 2455:utf8mb4_uca1400_hungarian_nopad_as_cs
    2456:utf8mb4_uca1400_sinhala_ai_ci 2457:utf8mb4_uca1400_sinhala_ai_cs
    2458:utf8mb4_uca1400_sinhala_as_ci 2459:utf8mb4_uca1400_sinhala_as_cs
    2460:utf8mb4_uca1400_sinhala_nopad_ai_ci 2461:utf8mb4_uca1400_sinhala_nopad_ai_cs
    2462:utf8mb4_uca1400_sinhala_nopad_as_ci 2463:utf8mb4_uca1400_sinhala_nopad_as_cs
    2464:utf8mb4_uca1400_german2_ai_ci 2465:utf8mb4_uca1400_german2_ai_cs
    2466:utf8mb4_uca1400_german2_as_ci 2467:utf8mb4_uca1400_german2_as_cs
    2468:utf8mb4_uca1400_german2_nopad_ai_ci 2469:utf8mb4_uca1400_german2_nopad_ai_cs
    2470:utf8mb4_uca1400_german2_nopad_as_ci 2471:utf8mb4_uca1400_german2_nopad_as_cs
    2488:utf8mb4_uca1400_vietnamese_ai_ci 2489:utf8mb4_uca1400_vietnamese_ai_cs
    2490:utf8mb4_uca1400_vietnamese_as_ci 2491:utf8mb4_uca1400_vietnamese_as_cs
    2492:utf8mb4_uca1400_vietnamese_nopad_ai_ci 2493:utf8mb4_uca1400_vietnamese_nopad_ai_cs
    2494:utf8mb4_uca1400_vietnamese_nopad_as_ci 2495:utf8mb4_uca1400_vietnamese_nopad_as_cs
    2496:utf8mb4_uca1400_croatian_ai_ci 2497:utf8mb4_uca1400_croatian_ai_cs
    2498:utf8mb4_uca1400_croatian_as_ci 2499:utf8mb4_uca1400_croatian_as_cs
    2500:utf8mb4_uca1400_croatian_nopad_ai_ci 2501:utf8mb4_uca1400_croatian_nopad_ai_cs
    2502:utf8mb4_uca1400_croatian_nopad_as_ci 2503:utf8mb4_uca1400_croatian_nopad_as_cs
""")

_ONLY_NAMES = frozenset(MYSQL_ONLY.values()) | frozenset(MARIADB_ONLY.values())

# MySQL 0900 language codes -> MariaDB uca1400 language names
_LANGUAGES = {
    "cs": "czech", "da": "danish", "de_pb": "german2", "eo": "esperanto", "es": "spanish",
    "es_trad": "spanish2", "et": "estonian", "hr": "croatian", "hu": "hungarian", "is": "icelandic",
    "la": "roman", "lt": "lithuanian", "lv": "latvian", "pl": "polish", "ro": "romanian", "sk": "slovak",
    "sl": "slovenian", "sv": "swedish", "tr": "turkish", "vi": "vietnamese",
}
_LANGUAGE_CODES = {v: k for k, v in _LANGUAGES.items()}
_MYSQL_0900 = re.compile(r"^utf8mb4_(?:(\w+?)_)?0900_(ai_ci|as_cs|as_ci|bin)$")
_MARIADB_1400 = re.compile(r"^utf8mb4_uca1400_(?:(?!nopad_)(\w+?)_)?(?:nopad_)?(ai_ci|as_cs|as_ci|ai_cs)$")


def equivalent(name: str, target_flavor: str) -> str | None:
    """The target flavor's collation closest to the other flavor's ``name`` (None: none)."""
    if target_flavor == "mariadb":
        if name == "utf8mb4_0900_bin":
            return "utf8mb4_nopad_bin"
        m = _MYSQL_0900.match(name)
        if m is None:
            return None
        code, strength = m.groups()
        if code is None:
            return f"utf8mb4_uca1400_nopad_{strength}"
        language = _LANGUAGES.get(code)
        return f"utf8mb4_uca1400_{language}_nopad_{strength}" if language else None
    if name in ("utf8mb4_nopad_bin",):
        return "utf8mb4_0900_bin"
    m = _MARIADB_1400.match(name)
    if m is None:
        return None
    language, strength = m.groups()
    if strength == "ai_cs":
        return None  # MySQL has no accent-insensitive, case-sensitive UCA collation
    if language is None:
        return f"utf8mb4_0900_{strength}"
    code = _LANGUAGE_CODES.get(language)
    if code is None or (strength == "as_ci"):
        return None
    return f"utf8mb4_{code}_0900_{strength}"


class TargetCollations:
    """The target's collations (ids and names), read once."""

    def __init__(self, ids: dict[int, str], names: set[str]) -> None:
        self.ids = ids
        self.names = names

    @classmethod
    def read(cls, conn, flavor: str) -> TargetCollations:
        if flavor == "mariadb":  # uca1400 collations are listed per character set there
            sql = b"SELECT ID, FULL_COLLATION_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY"
        else:
            sql = b"SELECT ID, COLLATION_NAME FROM information_schema.COLLATIONS"
        conn.query(sql)
        rows = conn.store_result().fetch_row(0)
        ids = {int(i): (n.decode() if isinstance(n, bytes) else str(n)) for i, n in rows if i is not None}
        return cls(ids, set(ids.values()))

    def resolve(self, cid: int, source_flavor: str, target_flavor: str) -> str:
        """A SQL value for SET collation_* = ...: the id itself, or a quoted name."""
        only = MYSQL_ONLY if source_flavor == "mysql" else MARIADB_ONLY
        name = only.get(cid)
        if name is None:
            if cid in self.ids:
                return str(cid)
            raise CollationError(f"collation id {cid}")
        if name in self.names:
            return f"'{name}'"
        alt = equivalent(name, target_flavor)
        if alt is not None and alt in self.names:
            return f"'{alt}'"
        raise CollationError(f"collation {name} (id {cid})")

    def rename(self, name: str, target_flavor: str) -> str | None:
        """For a collation name written in a statement: the target's equivalent when the
        target lacks it (None: keep the name; an unknown one fails on the target, naming it)."""
        if name in self.names or (name not in _ONLY_NAMES):
            return None
        return equivalent(name, target_flavor)

    def charset(self, value: str) -> str:
        """The character set of a resolved collation (for character_set_client)."""
        if value.startswith("'"):
            return "'" + value.strip("'").split("_", 1)[0] + "'"
        return value  # an id: the server takes its character set


_WORD = re.compile(rb"[A-Za-z0-9_$]+")


def rewrite_names(sql: bytes, replace) -> bytes:
    """``sql`` with every collation name the target lacks replaced by ``replace(name)``
    (a str, or None to keep it), outside strings, quoted identifiers and comments
    (``/*!...*/`` and ``/*+...*/`` are code and are looked into)."""
    out = bytearray()
    i, n = 0, len(sql)
    changed = False
    while i < n:
        c = sql[i]
        if c in b"'\"`":  # a string or quoted identifier: copied as is
            j = i + 1
            while j < n:
                if sql[j] == 0x5C and c != 0x60:  # backslash escape (not in identifiers)
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            out += sql[i : j + 1]
            i = j + 1
            continue
        if sql.startswith(b"/*", i) and not sql.startswith((b"/*!", b"/*+", b"/*M!"), i):
            j = sql.find(b"*/", i + 2)
            j = n if j < 0 else j + 2
            out += sql[i:j]
            i = j
            continue
        if c == 0x23 or (sql.startswith(b"--", i) and (i + 2 >= n or sql[i + 2] in b" \t\r\n")):
            j = sql.find(b"\n", i)
            j = n if j < 0 else j
            out += sql[i:j]
            i = j
            continue
        m = _WORD.match(sql, i)
        if m is None:
            out.append(c)
            i += 1
            continue
        word = m.group()
        new = replace(word.decode("ascii").lower()) if b"_" in word else None
        if new is not None:
            out += new.encode()
            changed = True
        else:
            out += word
        i = m.end()
    return bytes(out) if changed else sql


_MYSQL8_INVISIBLE = re.compile(rb"/\*!8\d{4}\s+(INVISIBLE|VISIBLE)\s*\*/", re.I)


def mysql_comments_for_mariadb(sql: bytes) -> bytes:
    """MySQL writes a generated invisible primary key as ``my_row_id ... /*!80023
    INVISIBLE */``; MariaDB skips ``/*!8....`` comments (MySQL 8 only) but has INVISIBLE
    columns: the keyword goes in as plain text."""
    return _MYSQL8_INVISIBLE.sub(rb"\1", sql)
