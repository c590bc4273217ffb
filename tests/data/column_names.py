"""How Keboola turns a CSV header cell into a column name: ONE table of examples.

Shared data, not a test. Both rules are checked against it:
- the daemon's prediction, `keboola_sync.layout.sanitize_column_name` (tests/unit/test_layout.py);
- the emulator's rule, `keboola_emulator.naming.sanitize_column_name` (tests/emulator/test_emu_naming.py).
Load it with `load_column_names()` below (tests/ is not a package, so the tests import this file by path).

Where the facts come from (keboola-storage-api.md §4.4 and §12): Keboola sanitises header cells with
`keboola/sanitizer` (its glibc branch, `ColumnNameSanitizer::sanitize`): drop control characters and
combining marks, `iconv UTF-8 -> WINDOWS-1250//TRANSLIT`, a fixed table that maps the accented
Windows-1250 letters (plus `§` -> `S`, `×` -> `x`, `ß` -> `s`) to ASCII, every run of
`[^A-Za-z0-9_]` -> `_`, trim `_`, and a `_` after Postgres system names. Case is kept. Every other
Windows-1250 character (`€`, `™`, `°`, `µ`, `–`, NBSP, ...) is non-ASCII after iconv and becomes a
separator, so it is settled too.

`status`:
- SETTLED: the outcome is a fact (a test of Keboola's or the sanitizer's own, or the algorithm
  applied to characters that Windows-1250 contains). Both rules must give `column`.
- LOCALE: a character outside Windows-1250 whose transliteration depends on the server's glibc
  locale (§12: UNCONFIRMED which locale production runs). `column` is what the emulator models
  (glibc's C.UTF-8: accents and strokes stripped, no Cyrillic), `outcomes` lists what §12 records
  per locale where it does. Tests only demand that the daemon and the emulator agree with each
  other here, and with `outcomes` where there are any.

`column == ""` means nothing is left: Keboola refuses the cell as an invalid (empty) column name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SETTLED = "settled"
LOCALE = "locale"


@dataclass(frozen=True)
class ColumnName:
    header: str  # the CSV header cell as the user wrote it
    column: str  # the column Keboola stores (SETTLED) or the emulator models (LOCALE)
    status: str  # SETTLED or LOCALE
    source: str  # where the fact comes from
    outcomes: dict[str, str] = field(default_factory=dict)  # LOCALE only: locale -> column, from §12


def _s(header: str, column: str, source: str) -> ColumnName:
    return ColumnName(header, column, SETTLED, source)


def _l(header: str, column: str, source: str, **outcomes: str) -> ColumnName:
    return ColumnName(header, column, LOCALE, source, {k.replace("_", "."): v for k, v in outcomes.items()})


PHPT = "Keboola's API tests (§4.4)"
SAN = "keboola/sanitizer's own test (§12)"
S12 = "§12 example"
ALGO = "§12 algorithm, Windows-1250 character"

COLUMN_NAMES: tuple[ColumnName, ...] = (
    # -- observed on real stacks (§4.4) -----------------------------------------------------------
    _s("with spaces", "with_spaces", PHPT),
    _s("ščřščž", "scrscz", PHPT),
    _s("_with_underscore", "with_underscore", PHPT),
    _s("language-id", "language_id", PHPT),
    _s("oid", "oid_", PHPT),
    _s("xMax", "xMax_", PHPT),
    _s("CTID", "CTID_", PHPT),
    _s("0", "0", PHPT),
    _s("1", "1", PHPT),
    _s("45", "45", PHPT),
    _s("Id", "Id", PHPT),
    _s("queryId", "queryId", PHPT),
    _s("", "", PHPT),
    # -- the sanitizer's own tests --------------------------------------------------------------
    _s("_~dlažební  %_kostky_~", "dlazebni__kostky", SAN),
    _s("test-vn-đá cuội", "test_vn_da_cuoi", SAN),
    _s("jp日本語", "jp", SAN),
    # -- §12's worked examples ------------------------------------------------------------------
    _s("Straße", "Strase", S12),
    _s("price €", "price", S12),
    _s("€uro", "uro", S12),
    _s("Brand™ name", "Brand_name", S12),
    _s("§5", "S5", S12),
    _s("2×3", "2x3", S12),
    # -- the rest of the algorithm: system names, separators, quotes, control characters --------
    _s("tableoid", "tableoid_", ALGO),
    _s("XMIN", "XMIN_", ALGO),
    _s("cmin", "cmin_", ALGO),
    _s("cmax", "cmax_", ALGO),
    _s("ctid", "ctid_", ALGO),
    _s("oid_", "oid_", ALGO),  # already ends in "_" -> trimmed to "oid" -> a system name again
    _s("_oid_", "oid_", ALGO),
    _s("oids", "oids", ALGO),
    _s("a b", "a_b", ALGO),
    _s("a_b", "a_b", ALGO),
    _s("a--b", "a_b", ALGO),
    _s("a__b", "a__b", ALGO),  # underscores are kept, only other runs collapse
    _s("a.b", "a_b", ALGO),
    _s('quo"te', "quo_te", ALGO),
    _s("it's", "it_s", ALGO),
    _s('say "hi"', "say_hi", ALGO),
    _s("a^b~c`d", "a_b_c_d", ALGO),  # quotes/^/~ typed by the user are kept by toAscii, then separate
    _s("a\tb\nc\rd", "a_b_c_d", ALGO),  # tab, LF, CR survive toAscii and separate
    _s("a\x00b", "ab", ALGO),  # other control characters are dropped, not replaced
    _s("a\x1fb\x7fc", "abc", ALGO),
    _s("a\x85b", "ab", ALGO),  # U+0080-U+009F are dropped too
    _s("e\u0301", "e", ALGO),  # combining marks (U+0300-U+036F) are dropped
    _s("Cafe\u0301 Noir", "Cafe_Noir", ALGO),
    _s("---", "", ALGO),
    _s("__", "", ALGO),
    _s("%", "", ALGO),
    # -- Windows-1250 letters: the sanitizer's fixed table ------------------------------------------
    _s("Łódź", "Lodz", ALGO),
    _s("ĄĆĘŁŃÓŚŹŻ ąćęłńóśźż", "ACELNOSZZ_acelnoszz", ALGO),
    _s("ÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ", "ACDEEINORSTUUYZ", ALGO),
    _s("áčďéěíňóřšťúůýž", "acdeeinorstuuyz", ALGO),
    _s("ĹĽŔĺľŕ", "LLRllr", ALGO),
    _s("ÄÖÜäöü", "AOUaou", ALGO),
    _s("Müller", "Muller", ALGO),  # not "Mueller": the table maps ü to u
    _s("ŐŰőű", "OUou", ALGO),
    _s("ĂÂÎŞŢăâîşţ", "AAISTaaist", ALGO),
    _s("ÇçËë", "CcEe", ALGO),
    _s("Đđ", "Dd", ALGO),
    _s("ß", "s", ALGO),
    # every letter of the sanitizer's table at once, in its own order
    _s(
        "ĄŁĽŚ§ŠŞŤŹŽŻąłľśšşťźžżŔÁÂĂÄĹĆÇČÉĘËĚÍÎĎĐŃŇÓÔŐÖ×ŘŮÚŰÜÝŢßŕáâăäĺćçčéęëěíîďđńňóôőöřůúűüýţ",
        "ALLSSSSTZZZallssstzzzRAAAALCCCEEEEIIDDNNOOOOxRUUUUYTsraaaalccceeeeiiddnnooooruuuuyt",
        ALGO,
    ),
    # -- other Windows-1250 characters: not in the table, so separators -------------------------------
    _s("price (€)", "price", ALGO),
    _s("currency €", "currency", ALGO),
    _s("5µm", "5_m", ALGO),
    _s("°C", "C", ALGO),
    _s("a·b", "a_b", ALGO),
    _s("«x»", "x", ALGO),
    _s("a–b—c", "a_b_c", ALGO),
    _s("‘single’ “double”", "single_double", ALGO),
    _s("a\u00a0b", "a_b", ALGO),  # no-break space
    _s("a÷b", "a_b", ALGO),
    _s("a¤b¦c©d®e±f¶g", "a_b_c_d_e_f_g", ALGO),
    _s("a…b†c‡d‰e•f", "a_b_c_d_e_f", ALGO),
    _s("ŠkodaŽ™", "SkodaZ", ALGO),
    # every other non-ASCII Windows-1250 character at once: one separator
    _s("a€‚„…†‡‰‹‘’“”•–—™›\xa0ˇ˘¤¦¨©«¬\xad®°±˛´µ¶·¸»˝÷˙b", "a_b", ALGO),
    # -- outside Windows-1250: the server's locale decides (§12, UNCONFIRMED) -------------------------
    _l("Ørsted", "Orsted", S12, C_UTF_8="Orsted", C="rsted"),
    _l("Имя", "", S12, C_UTF_8=""),
    _l("naïve", "naive", "accent outside cp1250"),
    _l("Ħamrun", "Hamrun", "letter with stroke"),
    _l("Kadıköy", "Kadikoy", "dotless i"),
    _l("Œuvre", "OEuvre", "ligature"),
    _l("Æsir", "AEsir", "ligature"),
    _l("ﬁle", "file", "compatibility ligature"),
    _l("ＡＢＣ", "ABC", "full-width letters"),
    _l("名前", "", "CJK"),
    _l("Ωμέγα", "", "Greek"),
    _l("emoji 🎉", "emoji", "emoji"),
    _l("Ŧ ŧ", "T_t", "letter with stroke"),
)


def settled() -> list[ColumnName]:
    return [c for c in COLUMN_NAMES if c.status == SETTLED]


def locale_dependent() -> list[ColumnName]:
    return [c for c in COLUMN_NAMES if c.status == LOCALE]
