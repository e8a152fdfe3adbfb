"""Translations: one gettext catalog per language, picked from Telegram's `language_code`, plus Babel's formatting.

The sources are `bot/locales/<lang>/LC_MESSAGES/wanderlens.po`, translated from the template
`bot/locales/wanderlens.pot`, which is extracted from the N_()/NN_() markers in bot/. At start-up `Translator.load()`
reads every .po with Babel and compiles it in memory into a `gettext.GNUTranslations` (standard plural handling from
the Plural-Forms header). So no compiled .mo is committed or built: what translators edit is exactly what runs, and a
fresh clone works without a build step.
Reading seven small .po files takes a few tens of milliseconds, once per process.

English is the source language: its msgids are the English sentences, so it needs no catalog.

    python -m bot.i18n extract   # rewrite the template from the markers in bot/
    python -m bot.i18n update    # merge the template into every .po (new messages empty, changed ones fuzzy)
    python -m bot.i18n check     # list every missing, fuzzy or mismatched translation; exit 1 if there is one

Usage: build one `Translator` at start-up, keep it with the bot's services, and per update
`lang = translator.for_language(update.effective_user.language_code)`, then `lang.gettext(texts.START)`.
"""

from __future__ import annotations

import argparse
import gettext
import io
import string
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

from babel import Locale, UnknownLocaleError
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit

LOCALES_DIR: Final = Path(__file__).parent / "locales"
DOMAIN: Final = "wanderlens"
SOURCE_LANGUAGE: Final = "en"

# Each language under its own name, as a /language picker shows it. The keys are the catalogs' folder names
# (gettext's ll or ll_CC); `python -m bot.i18n check` fails if a folder and this table disagree.
SUPPORTED_LANGUAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "en": "English",
        "de": "Deutsch",
        "fr": "Français",
        "es": "Español",
        "it": "Italiano",
        "pt_BR": "Português (Brasil)",
        "ru": "Русский",
    }
)

# How extraction finds messages: N_(text) and NN_(singular, plural) are no-op markers (see below), and a comment
# starting "Translators:" right above one reaches the translator. The pybabel equivalent is in locales/README.md.
EXTRACT_KEYWORDS: Final[Mapping[str, tuple[int, ...] | None]] = MappingProxyType({"N_": None, "NN_": (1, 2)})
EXTRACT_METHODS: Final = (("**.py", "python"),)
COMMENT_TAGS: Final = ("Translators:",)
TEMPLATE_HEADER: Final = (
    "# Translations template for Wanderlens, extracted from bot/ by `python -m bot.i18n extract`: do not edit it.\n"
    "# Translate in bot/locales/<lang>/LC_MESSAGES/wanderlens.po (see bot/locales/README.md)."
)


def N_(message: str) -> str:  # gettext's conventional marker name
    """Marks a message for extraction and returns it unchanged: translation happens later, per user."""
    return message


class Plural(NamedTuple):
    """A message with plural forms, as marked by NN_(): the English singular and plural."""

    singular: str
    plural: str


def NN_(singular: str, plural: str) -> Plural:
    """Marks a message with plural forms for extraction; `lang.plural(message, n)` translates it."""
    return Plural(singular, plural)


@dataclass(frozen=True, eq=False)
class Lang:
    """One language for one user: its translations plus the locale that formats numbers, lists and distances.

    `code` names the catalog ("de", "pt_BR"); `locale` may be a regional variant of it ("de_CH" writes 1'240).
    Immutable, so one instance serves every message in that language.
    """

    code: str
    locale: Locale
    translations: gettext.NullTranslations

    @property
    def name(self) -> str:
        """The language's own name, as in a /language picker: "Deutsch"."""
        return SUPPORTED_LANGUAGES[self.code]

    @property
    def telegram_code(self) -> str:
        """The two-letter ISO 639-1 code that setMyCommands' `language_code` takes ("pt_BR" -> "pt")."""
        return self.code.split("_")[0]

    def gettext(self, message: str, /, **values: object) -> str:
        """The translation of `message`, its `{placeholders}` filled from `values` (already formatted strings)."""
        return _fill(self.translations.gettext(message), values)

    def ngettext(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        """The plural form for `n` in this language; `{count}` is `n` formatted for the locale unless given."""
        values.setdefault("count", self.number(n))
        return _fill(self.translations.ngettext(singular, plural, n), values)

    def plural(self, message: Plural, n: int, /, **values: object) -> str:
        """`ngettext` for a message marked with NN_()."""
        return self.ngettext(message.singular, message.plural, n, **values)

    def number(self, value: float) -> str:
        """1240 -> "1,240" (en), "1.240" (de), "1 240" (fr, ru; with the locale's non-breaking space)."""
        return format_decimal(value, locale=self.locale)

    def percent(self, fraction: float) -> str:
        """0.42 -> "42%" (en), "42 %" (de, fr, ru), rounded to a whole percent."""
        return format_percent(fraction, locale=self.locale)

    def distance_km(self, km: float) -> str:
        """1240.5 -> "1,240 km" (en), "1 240 км" (ru); one decimal below 10 km, where it still means something."""
        pattern = "#,##0.#" if km < 10 else "#,##0"
        return format_unit(km, "length-kilometer", length="short", format=pattern, locale=self.locale)

    def file_size(self, n_bytes: int) -> str:
        """20 MiB -> "20 MB" (en), "20 Mo" (fr), "20 МБ" (ru): binary megabytes, as Telegram's limits are."""
        if n_bytes >= 1024 * 1024:
            return format_unit(
                n_bytes / 1024**2, "digital-megabyte", length="short", format="#,##0.#", locale=self.locale
            )
        return format_unit(n_bytes / 1024, "digital-kilobyte", length="short", format="#,##0.#", locale=self.locale)

    def and_list(self, items: Iterable[str]) -> str:
        """["Alice", "Bob", "Chloe"] -> "Alice, Bob, and Chloe" (en), "Alice, Bob und Chloe" (de)."""
        return format_list(list(items), locale=self.locale)


def _fill(text: str, values: Mapping[str, object]) -> str:
    # Always format, even without values, so that a message behaves the same whether or not it has placeholders
    # (a literal brace is written {{ in every catalog). A missing value raises KeyError: a bug to see, not hide.
    return text.format_map(values)


@dataclass(frozen=True)
class Translator:
    """Every shipped language, loaded once at start-up and passed to whatever talks to users."""

    languages: Mapping[str, Lang]

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR) -> Translator:
        """Reads each supported language's .po from `directory`; English (the source) needs none."""
        languages = {SOURCE_LANGUAGE: Lang(SOURCE_LANGUAGE, Locale.parse(SOURCE_LANGUAGE), gettext.NullTranslations())}
        for code in SUPPORTED_LANGUAGES:
            if code != SOURCE_LANGUAGE:
                catalog = read_catalog(directory, code)
                languages[code] = Lang(code, Locale.parse(code), compile_catalog(catalog))
        return cls(MappingProxyType(languages))

    @property
    def default(self) -> Lang:
        return self.languages[SOURCE_LANGUAGE]

    def __iter__(self) -> Iterator[Lang]:
        return iter(self.languages.values())

    def for_language(self, code: str | None) -> Lang:
        """The language for Telegram's `language_code` (an IETF tag: "de", "de-AT", "pt-br"), else English.

        An exact catalog wins ("pt-br" -> pt_BR); otherwise any catalog of the same language ("pt-PT" -> pt_BR,
        "de-AT" -> de). The formatting follows the user's region where Babel knows it ("de-CH" -> de text, 1'240).
        """
        language, region = _split_tag(code)
        lang = self.languages.get(f"{language}_{region}") or self.languages.get(language)
        if lang is None:
            lang = next((other for other in self if other.telegram_code == language), self.default)
        if not region or lang.telegram_code != language or lang.locale.territory == region:
            return lang
        try:
            return replace(lang, locale=Locale(language, region))
        except (UnknownLocaleError, ValueError):  # a region CLDR has no data for: the language's own formats
            return lang


def _split_tag(code: str | None) -> tuple[str, str]:
    """ "pt-br" -> ("pt", "BR"); "zh-hans" -> ("zh", ""): only a two-letter subtag is a region."""
    parts = (code or "").strip().replace("_", "-").split("-")
    language = parts[0].lower()
    region = next((part.upper() for part in parts[1:] if len(part) == 2 and part.isalpha()), "")
    return language, region


# --- catalogs: reading, compiling, extracting, checking --------------------------------------------------------------


def po_path(directory: Path, code: str) -> Path:
    return directory / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def pot_path(directory: Path) -> Path:
    return directory / f"{DOMAIN}.pot"


def read_catalog(directory: Path, code: str) -> Catalog:
    with po_path(directory, code).open("rb") as f:
        return read_po(f, locale=code, domain=DOMAIN)


def read_template(directory: Path) -> Catalog:
    with pot_path(directory).open("rb") as f:
        return read_po(f, domain=DOMAIN)


def compile_catalog(catalog: Catalog) -> gettext.GNUTranslations:
    """The .po compiled in memory, as msgfmt would (fuzzy entries left out, so they fall back to English)."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def extract(source: Path = Path(__file__).parent) -> Catalog:
    """The template: every N_()/NN_() message in `source`, with its translator comments and locations."""
    template = Catalog(
        project="Wanderlens",
        version="1",
        copyright_holder="the Wanderlens authors",
        domain=DOMAIN,
        header_comment=TEMPLATE_HEADER,
        fuzzy=False,
    )
    for filename, lineno, message, comments, context in extract_from_dir(
        source, EXTRACT_METHODS, keywords=EXTRACT_KEYWORDS, comment_tags=COMMENT_TAGS, strip_comment_tags=True
    ):
        template.add(message, None, [(f"bot/{filename}", lineno)], auto_comments=comments, context=context)
    return template


def placeholders(text: str) -> set[str]:
    """The `{names}` a message fills; raises ValueError for a malformed format string."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def check_catalogs(directory: Path = LOCALES_DIR, source: Path = Path(__file__).parent) -> list[str]:
    """Every problem that would make a user see English or a broken sentence; an empty list means all is well.

    Checked: the template matches the markers in the code; each supported language has a catalog and each catalog
    a supported language; each has a Plural-Forms header that splits numbers as CLDR does for that language;
    every message is translated, not fuzzy, with every plural form; and each translation uses exactly the
    placeholders of its English message (every plural form all of them, since e.g. Russian's "one" form also
    serves 21, 31, ...), with plain `{name}` fields only.
    """
    problems: list[str] = []
    template = read_template(directory)
    expected = {_key(m) for m in extract(source) if m.id}
    found = {_key(m) for m in template if m.id}
    problems += [f"template: {k!r} is in the code but not in {DOMAIN}.pot (run extract)" for k in expected - found]
    problems += [
        f"template: {k!r} is in {DOMAIN}.pot but no longer in the code (run extract)" for k in found - expected
    ]

    folders = {p.parent.parent.name for p in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    for code in sorted(folders - set(SUPPORTED_LANGUAGES)):
        problems.append(f"{code}: has a catalog but is not in SUPPORTED_LANGUAGES")
    for code in SUPPORTED_LANGUAGES:
        if code == SOURCE_LANGUAGE:
            continue
        if code not in folders:
            problems.append(f"{code}: in SUPPORTED_LANGUAGES but {po_path(directory, code)} is missing")
            continue
        problems += [f"{code}: {problem}" for problem in _check_catalog(read_catalog(directory, code), template)]
    return problems


def _key(message: object) -> str:
    msgid = message.id  # type: ignore[attr-defined]
    return msgid[0] if isinstance(msgid, tuple) else msgid


def _check_catalog(catalog: Catalog, template: Catalog) -> list[str]:
    problems = _check_plural_forms(catalog)
    for entry in template:
        if not entry.id:
            continue
        message = catalog.get(entry.id, entry.context)
        key = _key(entry)
        if message is None:
            problems.append(f"{key!r} is missing (run update)")
            continue
        if message.fuzzy:
            problems.append(f"{key!r} is fuzzy: its English changed; review the translation and drop the flag")
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if entry.pluralizable and len(forms) != catalog.num_plurals:
            problems.append(f"{key!r} has {len(forms)} plural forms, the language has {catalog.num_plurals}")
        english = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        try:
            wanted = set().union(*(placeholders(text) for text in english))
            for n, form in enumerate(forms):
                if not form:
                    problems.append(f"{key!r} is not translated" + (f" (plural form {n})" if len(forms) > 1 else ""))
                elif (got := placeholders(form)) != wanted:
                    problems.append(f"{key!r}: placeholders {sorted(got)} in form {n}, expected {sorted(wanted)}")
                elif any(spec or conversion for _, _, spec, conversion in string.Formatter().parse(form)):
                    problems.append(f"{key!r}: form {n} formats a placeholder; values arrive already formatted")
        except ValueError as e:
            problems.append(f"{key!r}: not a valid format string ({e})")
    stale = {_key(m) for m in catalog if m.id} - {_key(m) for m in template if m.id}
    problems += [f"{key!r} is no longer in the template (run update)" for key in sorted(stale)]
    return problems


def _check_plural_forms(catalog: Catalog) -> list[str]:
    """The header must split 0..1000 into the same classes as CLDR's rule for the language (e.g. fr: 0 and 1 alike)."""
    header = dict(catalog.mime_headers).get("Plural-Forms", "")
    if "plural=" not in header:
        return [f"no Plural-Forms header (Babel suggests {catalog.plural_forms!r})"]
    choose = gettext.c2py(catalog.plural_expr)
    rule = Locale.parse(str(catalog.locale)).plural_form
    pairs = {(choose(n), rule(n)) for n in range(1001)}
    if len(pairs) != len({f for f, _ in pairs}) or len(pairs) != len({c for _, c in pairs}):
        return [f"Plural-Forms {header!r} does not match CLDR's plural categories for {catalog.locale}"]
    if any(not 0 <= form < catalog.num_plurals for form, _ in pairs):
        return [f"Plural-Forms {header!r} chooses a form beyond nplurals={catalog.num_plurals}"]
    return []


def update(directory: Path = LOCALES_DIR) -> None:
    """Merges the template into every catalog, as `pybabel update` does: new messages empty, changed ones fuzzy."""
    template = read_template(directory)
    for code in SUPPORTED_LANGUAGES:
        if code == SOURCE_LANGUAGE:
            continue
        path = po_path(directory, code)
        if path.exists():
            catalog = read_catalog(directory, code)
            catalog.update(template)
        else:  # a new language: start from the template, with Babel's header for it (check the Plural-Forms)
            catalog = Catalog(locale=code, domain=DOMAIN, project="Wanderlens")
            catalog.update(template)
        _write_po(path, catalog)


def _write_po(path: Path, catalog: Catalog) -> None:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=120, sort_output=False, omit_header=False, include_previous=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.i18n", description="Extract, update and check the gettext catalogs."
    )
    parser.add_argument("command", choices=("extract", "update", "check"))
    parser.add_argument("--locales", type=Path, default=LOCALES_DIR, help="the catalogs' folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "extract":
        _write_po(pot_path(args.locales), extract())
        print(f"wrote {pot_path(args.locales)}")
        return 0
    if args.command == "update":
        update(args.locales)
        print(f"updated {', '.join(c for c in SUPPORTED_LANGUAGES if c != SOURCE_LANGUAGE)}; now translate and check")
        return 0
    problems = check_catalogs(args.locales)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"{len(problems)} problem(s) in {len(SUPPORTED_LANGUAGES) - 1} catalogs"
        if problems
        else "all catalogs complete"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
