"""Which Commons licences a catalog accepts: free ones only (CC0, public domain, CC BY, CC BY-SA, any version).

A photo whose licence is non-free, unknown or merely "free but impractical" (GFDL wants its whole text shipped with
every copy) is never downloaded. The verdict says what duties come with an accepted one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Commons' LicenseShortName spellings vary ("CC BY-SA 4.0", "CC-BY-SA-3.0-de", "CC BY 2.0 fr", "cc-by-sa-2.5,2.0,1.0").
_CC = re.compile(r"^cc[ -]by(?P<sa>[ -]sa)?(?:[ -]\d(?:\.\d)?(?:[, ]+\d(?:\.\d)?)*(?:[ -][a-z]{2,3})?)?$")
# Non-commercial and no-derivatives terms are not free (and a bot that crops thumbnails makes derivatives).
_RESTRICTED = re.compile(r"(?:^|[ -])(?:nc|nd)(?:[ -]|$)")
_CC0 = re.compile(r"^(?:cc0|cc[ -]zero|cc0[ -]1\.0)$")
_PUBLIC_DOMAIN = re.compile(r"^(?:public domain|pd|pd[ -].*|public domain mark.*)$")
# {{Attribution}} on Commons: any use allowed as long as the author is credited (a BY licence in all but name).
_ATTRIBUTION = re.compile(r"^attribution(?: only)?$")


@dataclass(frozen=True)
class LicenceVerdict:
    """Whether a photo may go into the catalog, and on what terms."""

    accepted: bool
    licence: str  # as Commons names it, e.g. "CC BY-SA 4.0"
    kind: str = ""  # "cc0", "public-domain", "by" or "by-sa" when accepted
    reason: str = ""  # why not, when refused

    @property
    def needs_attribution(self) -> bool:
        return self.kind in ("by", "by-sa")

    @property
    def share_alike(self) -> bool:
        return self.kind == "by-sa"


def judge(short_name: str, *, non_free: bool = False) -> LicenceVerdict:
    """The verdict for a Commons ``LicenseShortName`` and ``NonFree`` flag."""
    licence = " ".join(short_name.split())
    if non_free:
        # Commons marks fair-use uploads (allowed on a few Wikipedias, never on Commons itself) this way.
        return LicenceVerdict(False, licence, reason=f"non-free file ({licence or 'no licence named'})")
    if not licence:
        return LicenceVerdict(False, licence, reason="no licence named")
    name = licence.lower()
    if _CC0.match(name):
        return LicenceVerdict(True, licence, "cc0")
    if _PUBLIC_DOMAIN.match(name):
        return LicenceVerdict(True, licence, "public-domain")
    match = _CC.match(name)
    if match and not _RESTRICTED.search(name):
        return LicenceVerdict(True, licence, "by-sa" if match.group("sa") else "by")
    if _ATTRIBUTION.match(name):
        return LicenceVerdict(True, licence, "by")
    return LicenceVerdict(False, licence, reason=f"licence not accepted ({licence})")


def parse_flag(value: str | bool | None) -> bool:
    """extmetadata's ``NonFree`` arrives as a string ("true", "1") when present at all."""
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("true", "1", "yes")
