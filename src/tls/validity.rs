//! The validity period of an X.509 certificate, read straight from its DER
//! (the only fields ACME renewal needs; a full X.509 parser would be a
//! large dependency for two dates). Pure and bounds-checked: garbage gives
//! `None`, never a panic.

use std::time::{Duration, SystemTime};

/// One DER element: (tag, contents, rest after it).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, v: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 14) => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let num = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The first common name (2.5.4.3) in a DER `Name`, else the first
/// organization (2.5.4.10): enough to tell an operator who a certificate
/// is for and who issued it.
fn common_name(name: &[u8]) -> Option<String> {
    let mut found: Option<(u8, String)> = None;
    let mut rdns = name;
    while !rdns.is_empty() {
        let (_, set, rest) = element(rdns)?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (_, atv, rest) = element(atvs)?;
            atvs = rest;
            let (0x06, oid, value) = element(atv)? else {
                continue;
            };
            let rank = match oid {
                [0x55, 0x04, 0x03] => 0,
                [0x55, 0x04, 0x0a] => 1,
                _ => continue,
            };
            let (_, text, _) = element(value)?;
            let text = String::from_utf8_lossy(text).into_owned();
            if found.as_ref().is_none_or(|(r, _)| rank < *r) {
                found = Some((rank, text));
            }
        }
    }
    found.map(|(_, t)| t)
}

/// The TBSCertificate fields an operator or renewal needs: (issuer,
/// validity, subject), each an element's contents.
fn tbs_names_and_dates(cert_der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (0x30, cert, _) = element(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] version, if present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    rest = element(rest)?.2; // serialNumber
    rest = element(rest)?.2; // signature algorithm
    let (_, issuer, rest) = element(rest)?;
    let (0x30, validity, rest) = element(rest)? else {
        return None;
    };
    let (_, subject, _) = element(rest)?;
    Some((issuer, validity, subject))
}

/// The DNS names (dNSName entries) of a DER certificate's subjectAltName
/// extension: empty when it has none. What clients match a name against
/// (RFC 6125 §6.4.4: not the common name when a SAN is present, and
/// browsers no longer read the common name at all).
pub fn dns_names(cert_der: &[u8]) -> Option<Vec<String>> {
    let (0x30, cert, _) = element(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
    for _ in 0..6 {
        rest = element(rest)?.2;
    }
    // Then [1] and [2] unique identifiers, if present, and [3] extensions.
    while !rest.is_empty() {
        let (tag, body, next) = element(rest)?;
        rest = next;
        if tag != 0xa3 {
            continue;
        }
        let (0x30, mut exts, _) = element(body)? else {
            return None;
        };
        while !exts.is_empty() {
            let (_, ext, next) = element(exts)?;
            exts = next;
            let (0x06, oid, mut fields) = element(ext)? else {
                return None;
            };
            // 2.5.29.17, subjectAltName.
            if oid != [0x55, 0x1d, 0x11] {
                continue;
            }
            if fields.first() == Some(&0x01) {
                fields = element(fields)?.2; // critical
            }
            let (0x04, value, _) = element(fields)? else {
                return None;
            };
            let (0x30, mut general, _) = element(value)? else {
                return None;
            };
            let mut names = Vec::new();
            while !general.is_empty() {
                let (tag, v, next) = element(general)?;
                general = next;
                // [2] IMPLICIT IA5String: dNSName.
                if tag == 0x82 {
                    names.push(String::from_utf8_lossy(v).into_owned());
                }
            }
            return Some(names);
        }
    }
    Some(Vec::new())
}

/// (subject, issuer) of a DER certificate, each its common name (or
/// organization).
pub fn subject_and_issuer(cert_der: &[u8]) -> Option<(String, String)> {
    let (issuer, _, subject) = tbs_names_and_dates(cert_der)?;
    Some((
        common_name(subject).unwrap_or_default(),
        common_name(issuer).unwrap_or_default(),
    ))
}

/// (notBefore, notAfter) of a DER certificate.
pub fn validity(cert_der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, validity, _) = tbs_names_and_dates(cert_der)?;
    let (t1, v1, rest) = element(validity)?;
    let (t2, v2, _) = element(rest)?;
    Some((time(t1, v1)?, time(t2, v2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dates_rcgen_wrote() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["v.test".to_owned()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2026, 11, 1);
        p.not_after = rcgen::date_time_ymd(2027, 1, 30);
        let cert = p.self_signed(&key).unwrap();
        let (nb, na) = validity(cert.der()).unwrap();
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(nb), 1_793_491_200); // 2026-11-01T00:00:00Z
        assert_eq!(secs(na) - secs(nb), 90 * 86_400);
        // GeneralizedTime past 2049.
        p.not_after = rcgen::date_time_ymd(2051, 3, 1);
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(secs(validity(cert.der()).unwrap().1), 2_561_241_600);
    }

    #[test]
    fn subject_and_issuer_names() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Org");
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA R1");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["lb.example".to_owned()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "lb.example");
        let cert = p.signed_by(&key, &issuer).unwrap();
        assert_eq!(
            subject_and_issuer(cert.der()),
            Some(("lb.example".to_owned(), "Test CA R1".to_owned()))
        );
        assert_eq!(subject_and_issuer(b"junk"), None);
    }

    #[test]
    fn dns_names_of_the_subject_alt_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a.test".to_owned(), "*.b.test".to_owned()])
            .unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            dns_names(cert.der()),
            Some(vec!["a.test".to_owned(), "*.b.test".to_owned()])
        );
        let none = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(dns_names(none.der()), Some(Vec::new()));
        assert_eq!(dns_names(b"junk"), None);
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x82, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = validity(&junk);
            let _ = dns_names(&junk);
        }
    }
}
