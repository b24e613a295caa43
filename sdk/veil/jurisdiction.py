"""Which privacy regime applies to a visitor, from the country and region of their IP.

EU/EEA and UK: GDPR, opt-in. California: CCPA/CPRA, opt-out, Global Privacy Control binding.
Japan: APPI, treated as opt-in. Anywhere else, and unknown: the strictest regime (opt-in).
"""

from dataclasses import dataclass

EEA = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    }
)
# Where the GDPR applies besides the EEA states' codes: territories that are part of the EU
# but have ISO codes of their own (Åland; France's outermost regions).
GDPR_AREA = EEA | {"AX", "GF", "GP", "MQ", "RE", "YT", "MF"}
# Countries with an EU adequacy decision (GDPR Art. 45), besides the EEA itself. The United
# States is not among them: the EU-US Data Privacy Framework covers only organisations
# certified under it (a recipient's `dpf_certified = true`), see `eu_adequate`.
EU_ADEQUATE = frozenset(
    {"AD", "AR", "CA", "FO", "GG", "IL", "IM", "JP", "JE", "NZ", "KR", "CH", "GB", "UY"}
)
# Countries Japan's PPC recognises as having a system equivalent to the APPI (the EEA and UK).
APPI_EQUIVALENT = GDPR_AREA | {"GB"}


def eu_adequate(country: str, dpf_certified: bool = False) -> bool:
    """Whether EU personal data may go to a recipient in `country` on adequacy alone."""
    return country in EU_ADEQUATE or (country == "US" and dpf_certified)


@dataclass(frozen=True, slots=True)
class Regime:
    key: str  # gdpr, ccpa, appi, strictest
    opt_in: bool  # consent-based purposes need a prior grant (else: until an opt-out)


GDPR = Regime("gdpr", opt_in=True)
CCPA = Regime("ccpa", opt_in=False)
APPI = Regime("appi", opt_in=True)
STRICTEST = Regime("strictest", opt_in=True)


def regime_for(country: str | None, region: str | None = None) -> Regime:
    if country in EEA or country == "GB":
        return GDPR
    if country == "US" and region == "CA":
        return CCPA
    if country == "JP":
        return APPI
    return STRICTEST
