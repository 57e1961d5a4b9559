//! The active ISO 4217 alphabetic codes a bill can be in.
//!
//! Checked against the ISO 4217 list (amendment current in 2025): withdrawn codes (HRK, SLL,
//! ZWL, CUC, ANG, ...) are left out, and so are the units nobody pays a hospital in: precious
//! metals (XAU, XAG, XPD, XPT), bond-market units (XBA..XBD), SDR-like units (XDR, XSU, XUA),
//! the testing code XTS and "no currency" XXX. The fund codes (BOV, CHE, CLF, USN, ...) stay:
//! they are legal settlement units in their countries.

/// Sorted, so [`is_active_code`] can binary-search it.
const ACTIVE_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
    "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD",
    "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
    "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST",
    "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` (three upper-case letters) is an active ISO 4217 currency.
pub(super) fn is_active_code(code: &str) -> bool {
    ACTIVE_CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_unique_and_three_upper_case_letters() {
        for pair in ACTIVE_CODES.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for code in ACTIVE_CODES.iter() {
            assert!(code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_uppercase()));
        }
    }

    #[test]
    fn known_codes_pass_and_withdrawn_or_unusual_ones_do_not() {
        for code in [
            "EUR", "USD", "GBP", "JPY", "CHF", "XOF", "ZWG", "AED", "ZMW",
        ] {
            assert!(is_active_code(code), "{code}");
        }
        for code in [
            "HRK", "DEM", "FRF", "XXX", "XTS", "XAU", "ABC", "eur", "EU", "",
        ] {
            assert!(!is_active_code(code), "{code}");
        }
    }
}
