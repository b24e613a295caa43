"""Which privacy regime applies to a visitor, from the country and region of their IP.

EU/EEA and UK: GDPR, opt-in. California: CCPA/CPRA, opt-out, Global Privacy Control binding.
Japan: APPI, treated as opt-in. Anywhere else, and unknown: the strictest regime (opt-in).
"""

from dataclasses import dataclass

EEA = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
})
# Countries with an EU adequacy decision (GDPR Art. 45), besides the EEA itself.
EU_ADEQUATE = frozenset({"AD", "AR", "CA", "FO", "GG", "IL", "IM", "JP", "JE", "NZ", "KR", "CH",
                         "GB", "US", "UY"})


@dataclass(frozen=True, slots=True)
class Regime:
    key: str        # gdpr, ccpa, appi, strictest
    opt_in: bool    # consent-based purposes need a prior grant (else: until an opt-out)


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
