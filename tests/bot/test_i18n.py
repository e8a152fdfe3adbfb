"""The translation layer: complete catalogs, language choice, plural forms, locale formatting, Telegram's limits."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.pofile import read_po

from bot import texts
from bot.i18n import (
    DOMAIN,
    LOCALES_DIR,
    SOURCE_LANGUAGE,
    SUPPORTED_LANGUAGES,
    Lang,
    Translator,
    _write_po,
    check_catalogs,
    main,
    placeholders,
    po_path,
    pot_path,
    read_catalog,
    read_template,
    update,
)
from contract import messages as m
from tests.conftest import REPO

TRANSLATED = [code for code in SUPPORTED_LANGUAGES if code != SOURCE_LANGUAGE]


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.load()


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A copy of the catalogs to break on purpose."""
    return Path(shutil.copytree(LOCALES_DIR, tmp_path / "locales"))


@dataclasses.dataclass(frozen=True)
class Place:
    name: str = "Lake Bled"
    city: str = "Bled"
    country: str = "Slovenia"
    score: float = 0.42
    credit: str = ""
    licence: str = ""
    fits: tuple[str, ...] = ()
    names: tuple[m.LocalName, ...] = ()


# --- the catalogs -------------------------------------------------------------------------------------------------


def test_every_message_is_translated_in_every_language_with_the_same_placeholders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert check_catalogs() == []
    assert main(["check"]) == 0
    assert capsys.readouterr().out == "all catalogs complete\n"


def test_the_check_command_lists_problems_and_exits_1(locales: Path, capsys: pytest.CaptureFixture[str]) -> None:
    po_path(locales, "es").unlink()
    assert main(["check", "--locales", str(locales)]) == 1
    out, err = capsys.readouterr()
    assert out == "1 problem(s) in 6 catalogs\n"
    assert err.startswith("es: in SUPPORTED_LANGUAGES but ")


def test_the_check_catches_dropped_added_and_untranslated_placeholders_and_forms(locales: Path) -> None:
    de = read_catalog(locales, "de")
    de[texts.NO_COORDINATES].string = "Keine Koordinaten, also keine Karte."  # {name} dropped
    de[texts.DISTANCE_OFF].string = "Entfernung aus für {who}."  # {who} added
    de[texts.BUSY].string = ""  # untranslated
    de[texts.STICKER].flags.add("fuzzy")  # the English changed since
    _write_po(po_path(locales, "de"), de)
    ru = read_catalog(locales, "ru")
    key = texts.FORGOTTEN.singular
    ru[key].string = (ru[key].string[0], ru[key].string[1], "Готово. Я удалил лайки.")  # "many" form lost {count}
    _write_po(po_path(locales, "ru"), ru)

    problems = "\n".join(check_catalogs(locales))

    assert re.search(r"de: .*has no coordinates.*placeholders \[\] in form 0, expected \['name'\]", problems)
    assert re.search(r"de: 'Distance is off again.': placeholders \['who'\]", problems)
    assert re.search(r"de: .I'm very busy.* is not translated", problems)
    assert re.search(r"de: .Cute!.* is fuzzy", problems)
    assert re.search(r"ru: .Done\. I deleted.*placeholders \[\] in form 2, expected \['count'\]", problems)
    assert len(problems.splitlines()) == 5


def test_the_check_catches_a_wrong_plural_forms_header_and_a_missing_catalog(locales: Path) -> None:
    fr = po_path(locales, "fr")
    # English's rule, not French's: 0 would take the plural ("0 endroits favoris").
    fr.write_text(fr.read_text().replace("plural=(n > 1)", "plural=(n != 1)"))
    ru = po_path(locales, "ru")
    ru.write_text(ru.read_text().replace("nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : ", "nplurals=3; plural=("))
    po_path(locales, "it").unlink()

    problems = check_catalogs(locales)

    assert any(p.startswith("fr: Plural-Forms") and "does not match CLDR" in p for p in problems), problems
    assert any(p.startswith("ru: Plural-Forms") for p in problems), problems
    assert any(p.startswith("it: in SUPPORTED_LANGUAGES but") for p in problems), problems


def test_a_message_added_to_the_code_must_be_extracted_then_translated(locales: Path, tmp_path: Path) -> None:
    source = tmp_path / "bot"
    source.mkdir()
    shutil.copy(REPO / "bot" / "i18n.py", source)
    (source / "texts.py").write_text((REPO / "bot" / "texts.py").read_text() + '\nNEW: Final = N_("Brand new.")\n')

    assert check_catalogs(locales, source) == [
        "template: 'Brand new.' is in the code but not in wanderlens.pot (run extract)"
    ]

    from bot.i18n import extract

    _write_po(pot_path(locales), extract(source))
    update(locales)
    problems = check_catalogs(locales, source)
    assert sorted(problems) == sorted(f"{code}: 'Brand new.' is not translated" for code in TRANSLATED)


def test_the_template_is_plain_text_with_named_placeholders_only() -> None:
    for message in read_template(LOCALES_DIR):
        for text in message.id if isinstance(message.id, tuple) else (message.id,):
            assert "<" not in text and "*" not in text, f"markup in a plain-text message: {text!r}"
            assert all(re.fullmatch(r"[a-z_]+", name) for name in placeholders(text)), text


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_message_renders_in_every_language_for_many_counts(translator: Translator, code: str) -> None:
    """Through the compiled catalog, as the bot uses it: every translation has its English text's values."""
    lang = translator.for_language(code)
    english = translator.default
    for message in read_template(LOCALES_DIR):
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            values = {name: "X" for name in placeholders(message.id[1]) - {"count"}}
            for n in range(0, 112):
                assert lang.ngettext(*message.id, n, **values) != english.ngettext(*message.id, n, **values)
        else:
            values = {name: "X" for name in placeholders(message.id)}
            text = lang.gettext(message.id, **values)
            assert text, message.id
            if message.id not in (texts.GROUP_CAPTION, texts.GROUP_CAPTION_WITH_PLACE):  # "{rank}. {name}" is universal
                assert text != english.gettext(message.id, **values), f"{code}: {message.id!r} is still English"


def test_a_missing_value_fails_loudly(translator: Translator) -> None:
    with pytest.raises(KeyError, match="name"):
        translator.for_language("de").gettext(texts.NO_COORDINATES)


def test_supported_languages_are_named_as_babel_names_them() -> None:
    for code, name in SUPPORTED_LANGUAGES.items():
        own = Locale.parse(code).get_display_name()
        assert name == own[:1].upper() + own[1:], code


def test_the_catalogs_ship_with_the_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"babel>=' in pyproject
    assert "locales/*/LC_MESSAGES/*.po" in pyproject
    for code in TRANSLATED:
        with po_path(LOCALES_DIR, code).open("rb") as file:
            assert read_po(file).locale is not None
    assert sorted(p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")) == sorted(TRANSLATED)


# --- choosing the language ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language_code", "catalog", "locale"),
    [
        (None, "en", "en"),
        ("", "en", "en"),
        ("xx", "en", "en"),
        ("nl", "en", "en"),  # no Dutch catalog: English, formatted as English (not "1.240" next to English words)
        ("en", "en", "en"),
        ("en-GB", "en", "en_GB"),
        ("de", "de", "de"),
        ("de-AT", "de", "de_AT"),
        ("de-CH", "de", "de_CH"),
        ("DE_at", "de", "de_AT"),
        ("pt-br", "pt_BR", "pt_BR"),
        ("pt-BR", "pt_BR", "pt_BR"),
        ("pt", "pt_BR", "pt_BR"),
        ("pt-PT", "pt_BR", "pt_PT"),
        ("ru", "ru", "ru"),
        ("fr-CA", "fr", "fr_CA"),
        ("es-419", "es", "es"),  # a numeric region: the language's own formats
        ("zh-hans", "en", "en"),  # a script subtag, not a region
        ("de-XX", "de", "de"),  # a region CLDR does not know
    ],
)
def test_for_language_picks_the_catalog_and_the_formats(
    translator: Translator, language_code: str | None, catalog: str, locale: str
) -> None:
    lang = translator.for_language(language_code)
    assert (lang.code, str(lang.locale)) == (catalog, locale)


def test_a_regional_variant_shares_the_catalog_but_formats_its_own_way(translator: Translator) -> None:
    de, ch = translator.for_language("de"), translator.for_language("de-CH")
    assert ch.gettext(texts.BUSY) == de.gettext(texts.BUSY)
    assert (de.number(1240), ch.number(1240)) == ("1.240", "1'240")


def test_a_lang_is_immutable_and_a_language_is_loaded_once(translator: Translator) -> None:
    lang = translator.for_language("de")
    with pytest.raises(dataclasses.FrozenInstanceError):
        lang.code = "fr"  # type: ignore[misc]
    assert translator.for_language("de") is lang
    assert translator.for_language("de-AT").translations is lang.translations


def test_telegram_codes_are_two_letters(translator: Translator) -> None:
    assert [lang.telegram_code for lang in translator] == ["en", "de", "fr", "es", "it", "pt", "ru"]
    assert translator.for_language("pt-br").name == "Português (Brasil)"


# --- plural forms ---------------------------------------------------------------------------------------------------


def test_russian_has_three_plural_forms(translator: Translator) -> None:
    ru = translator.for_language("ru")
    said = {n: texts.forgotten(ru, n) for n in (1, 2, 5, 11, 21, 22, 25, 111)}
    assert "удалил 1 лайк " in said[1]
    assert "удалил 2 лайка " in said[2]
    assert "удалил 5 лайков " in said[5]
    assert "удалил 11 лайков " in said[11]
    assert "удалил 21 лайк " in said[21]
    assert "удалил 22 лайка " in said[22]
    assert "удалил 111 лайков " in said[111]
    assert len({said[1].replace("1", "N"), said[2].replace("2", "N"), said[5].replace("5", "N")}) == 3


def test_english_and_french_choose_differently_for_zero(translator: Translator) -> None:
    en, fr = translator.for_language("en"), translator.for_language("fr")
    assert en.plural(texts.LIKED_TOTAL, 1) == "You have 1 liked place."
    assert en.plural(texts.LIKED_TOTAL, 2) == "You have 2 liked places."
    assert en.plural(texts.LIKED_TOTAL, 0) == "You have 0 liked places."
    assert fr.plural(texts.LIKED_TOTAL, 0) == "Tu as 0 endroit favori."
    assert fr.plural(texts.LIKED_TOTAL, 2) == "Tu as 2 endroits favoris."


def test_count_is_formatted_for_the_locale(translator: Translator) -> None:
    assert translator.for_language("en").plural(texts.LIKED_TOTAL, 1240) == "You have 1,240 liked places."
    assert translator.for_language("ru").plural(texts.LIKED_TOTAL, 1240) == "У тебя 1\xa0240 любимых мест."
    assert translator.for_language("de").plural(texts.LIKED_TOTAL, 1240) == "Du hast jetzt 1.240 Lieblingsorte."


# --- formatting -----------------------------------------------------------------------------------------------------

NNBSP = "\u202f"  # CLDR's narrow no-break space: French groups digits with it


@pytest.mark.parametrize(
    ("code", "number", "percent", "distance", "short_distance", "size", "names"),
    [
        ("en", "1,240", "42%", "1,240 km", "3.4 km", "20 MB", "Alice, Bob, and Chloe"),
        ("de", "1.240", "42\xa0%", "1.240 km", "3,4 km", "20 MB", "Alice, Bob und Chloe"),
        (
            "fr",
            f"1{NNBSP}240",
            "42\xa0%",
            f"1{NNBSP}240{NNBSP}km",
            f"3,4{NNBSP}km",
            f"20{NNBSP}Mo",
            "Alice, Bob et Chloe",
        ),
        ("ru", "1\xa0240", "42\xa0%", "1\xa0240 км", "3,4 км", "20 МБ", "Alice, Bob и Chloe"),
    ],
)
def test_numbers_percentages_distances_sizes_and_lists_follow_the_locale(
    translator: Translator,
    code: str,
    number: str,
    percent: str,
    distance: str,
    short_distance: str,
    size: str,
    names: str,
) -> None:
    lang = translator.for_language(code)
    assert lang.number(1240) == number
    assert lang.percent(0.42) == percent
    assert lang.distance_km(1240.5) == distance
    assert lang.distance_km(3.44) == short_distance
    assert lang.file_size(20 * 1024 * 1024) == size
    assert lang.and_list(["Alice", "Bob", "Chloe"]) == names


# --- composite texts ------------------------------------------------------------------------------------------------


def test_captions_in_english_keep_the_current_wording(translator: Translator) -> None:
    en = translator.default
    assert texts.caption(en, 1, Place(score=0.87)) == "1. Lake Bled — Bled, Slovenia · 87% match"
    assert texts.caption(en, 2, Place(city="", country="", score=-0.1)) == "2. Lake Bled · 0% match"
    assert (
        texts.caption(en, 3, Place(fits=("Alice", "Bob"), credit="Jane Doe"), distance_km=1240.5)
        == "3. Lake Bled — Bled, Slovenia · 42% match · 1,240 km away\nFits: Alice and Bob\n📷 Jane Doe"
    )
    assert texts.group_caption(en, 1, Place()) == "1. Lake Bled — Bled, Slovenia\nA compromise for everyone"


def test_captions_credit_the_author_and_the_licence_each_once(translator: Translator) -> None:
    en = translator.default
    both = Place(credit="Jane Doe", licence="CC BY 4.0")
    assert texts.caption(en, 1, both).endswith("\n📷 Jane Doe, CC BY 4.0")
    assert texts.group_caption(en, 1, both).endswith("\n📷 Jane Doe, CC BY 4.0")
    named = Place(credit="Jane Doe (CC BY-SA 4.0)", licence="cc by-sa 4.0")  # open data names it in the credit
    assert texts.caption(en, 1, named).endswith("\n📷 Jane Doe (CC BY-SA 4.0)")
    assert texts.caption(en, 1, Place(licence="CC0")).endswith("\n📷 CC0")
    assert "📷" not in texts.caption(en, 1, Place())


def test_a_caption_never_exceeds_telegrams_limit(translator: Translator) -> None:
    long = Place(name="N" * 600, city="C" * 300, country="K" * 300, fits=("A" * 50,) * 20, credit="c" * 300)
    for lang in translator:
        assert len(texts.caption(lang, 10, long, distance_km=19999.9)) <= 1024
        assert len(texts.group_caption(lang, 10, long)) <= 1024


def test_caption_templates_and_buttons_stay_short(translator: Translator) -> None:
    for lang in translator:
        caption = texts.caption(lang, 10, Place(name="", city="", country="", fits=("",)), distance_km=19999.9)
        assert len(caption) <= 100, (lang.code, caption)
        for label in (
            texts.MORE_BUTTON,
            texts.MAP_BUTTON,
            texts.FORGET_YES,
            texts.FORGET_NO,
            texts.LANGUAGE_AUTO_BUTTON,
        ):
            assert 1 <= len(lang.gettext(label)) <= 24, (lang.code, lang.gettext(label))


def test_likes_confirmation_names_who_in_groups(translator: Translator) -> None:
    en, ru = translator.default, translator.for_language("ru")
    assert texts.liked(en, Place(), 3) == "❤️ Liked Lake Bled (Bled, Slovenia). You have 3 liked places."
    assert (
        texts.liked(en, Place(city="", country=""), 1, who="Alice")
        == "❤️ Alice liked Lake Bled. Alice has 1 liked place."
    )
    assert (
        texts.liked(ru, Place(), 21, who="Alice")
        == "❤️ Alice ставит лайк: Lake Bled (Bled, Словения). Alice: в избранном 21 место."
    )


def test_after_album_uses_the_translated_button_name(translator: Translator) -> None:
    de = translator.for_language("de")
    text = texts.after_album(de, members=["Alice", "Bob"], remaining=1)
    assert text.splitlines() == [
        "Orte für Alice und Bob.",
        "Tippe bei den Orten, die dir gefallen, auf 👍 – so lerne ich deinen Geschmack kennen.",
        "Noch 1 Ort wartet: Tippe auf Mehr ▶ oder schick /more.",
    ]
    assert texts.album_keyboard(de, "p1", 2, first_rank=6, more=True).inline_keyboard[1][0].text == "Mehr ▶"


IMAGE_REASONS = (
    "empty",
    "too_large_bytes",
    "unsupported_format",
    "corrupt",
    "too_many_pixels",
    "too_small",
    "bad_aspect",
)


def test_every_image_problem_has_its_own_sentence_in_every_language(translator: Translator) -> None:
    from recommender.images import ImageProblem

    assert {problem.value for problem in ImageProblem} == {*IMAGE_REASONS, "not_an_image"}
    for lang in translator:
        sentences = [texts.image_problem(lang, reason, kind="HEIC") for reason in IMAGE_REASONS]
        sentences += [texts.image_problem(lang, "not_an_image", kind="SVG"), texts.image_problem(lang, "not_an_image")]
        assert len(set(sentences)) == len(sentences), lang.code
    en = translator.default
    # No values: the English is exactly what the bot said before the translation layer (bot/messages.py).
    assert texts.image_problem(en, "empty") == "That file is empty — please send a photo."
    assert (
        texts.image_problem(en, "corrupt")
        == "That image looks damaged — it couldn't be decoded. Please try another photo."
    )
    assert (
        texts.image_problem(en, "bad_aspect")
        == "That image is an unusual shape (a very long strip); please send an ordinary photo."
    )
    assert (
        texts.image_problem(en, "too_large_bytes") == "That photo is too large (over 20 MB). Please send a smaller one."
    )
    assert "(over 50 megapixels)" in texts.image_problem(en, "too_many_pixels")
    assert "(at least 16×16 pixels, please)" in texts.image_problem(en, "too_small")


# --- the command menu -----------------------------------------------------------------------------------------------


def test_command_descriptions_exist_in_every_language_within_telegrams_limits(translator: Translator) -> None:
    for lang in translator:
        commands = texts.bot_commands(lang, tuple(texts.COMMAND_DESCRIPTIONS))
        assert [c.command for c in commands] == list(texts.COMMAND_DESCRIPTIONS)
        for command in commands:
            assert re.fullmatch(r"[a-z0-9_]{1,32}", command.command)
            assert 1 <= len(command.description) <= 256, (lang.code, command)
            assert not command.description.endswith("."), (lang.code, command)
            if lang.code != SOURCE_LANGUAGE:
                assert command.description != texts.COMMAND_DESCRIPTIONS[command.command], (lang.code, command)
    assert [c.command for c in texts.bot_commands(translator.default)] == list(texts.COMMANDS)


def test_language_answers_list_every_language_in_its_own_name(translator: Translator) -> None:
    text = texts.language_unknown(translator.for_language("fr"), "nl", translator)
    assert text.startswith("Je ne parle pas encore «\xa0nl\xa0».")
    assert "de (Deutsch), fr (Français), es (Español), it (Italiano), pt (Português (Brasil)), ru (Русский)" in text
    de = translator.for_language("de")
    assert de.gettext(texts.LANGUAGE_SET, language=de.name) == "Alles klar, ich spreche jetzt Deutsch."


def test_lang_is_the_only_thing_the_texts_need() -> None:
    # The composite texts take the Lang first, so that wiring them is `texts.caption(lang, rank, item)`.
    import inspect

    for name in ("caption", "group_caption", "after_album", "album_keyboard", "liked", "likes_list", "forgotten"):
        first = next(iter(inspect.signature(getattr(texts, name)).parameters.values()))
        assert (first.name, first.annotation) == ("lang", "Lang"), name
    assert Lang.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_names_and_countries_in_the_users_language_where_known(translator: Translator) -> None:
    de, pt, en = (translator.for_language(code) for code in ("de", "pt-BR", "en"))
    rome = Place(
        name="Rome",
        city="",
        country="Italy",
        names=(m.LocalName("de", "Rom"), m.LocalName("pt_br", "Roma")),
    )
    assert texts.caption(de, 1, rome).startswith("1. Rom – Italien")
    assert texts.caption(pt, 1, rome).startswith("1. Roma")
    assert texts.caption(en, 1, rome).startswith("1. Rome — Italy")
    # A country CLDR does not know, and a name without a translation, stay as the catalog spells them.
    assert texts.place(Place(country="Atlantis"), de) == "Bled, Atlantis"
    assert texts.local_name(de, Place()) == "Lake Bled"
