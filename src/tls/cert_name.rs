//! The common name in an X.509 certificate's subject, the user name of the `EXTERNAL`
//! mechanism (RabbitMQ's `ssl_cert_login_from = common_name`). A small DER walk over the
//! certificate rustls already verified:
//!
//! ```text
//! Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
//!                               validity, subject, ... }
//! Name ::= SEQUENCE OF SET OF SEQUENCE { type OBJECT IDENTIFIER, value ANY }
//! ```
//!
//! Every length is checked against what is left of its enclosing value, so garbage yields
//! None, never a panic or a read out of bounds; nesting is fixed, so there is no recursion.

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
/// `[0] EXPLICIT` version, present in v2 and v3 certificates.
const TAG_VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// String types a common name may use: UTF8String, PrintableString, TeletexString (taken as
/// UTF-8, as in practice it holds ASCII), IA5String.
const NAME_STRING_TAGS: [u8; 4] = [0x0c, 0x13, 0x14, 0x16];

/// One DER value: its tag, its contents and the input after it.
fn read_value(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: 1 to 4 length octets; 0x80 (indefinite) is not DER.
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (digits, rest) = rest.split_at(octets);
        let length = digits
            .iter()
            .fold(0usize, |length, digit| (length << 8) | usize::from(*digit));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, rest) = rest.split_at(length);
    Some((tag, contents, rest))
}

/// The contents of a value that must have tag `tag`, and the input after it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = read_value(input)?;
    (found == tag).then_some((contents, rest))
}

/// The subject Name's contents of a DER certificate.
fn subject(certificate: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = expect(certificate, TAG_SEQUENCE)?;
    let (tbs, _) = expect(certificate, TAG_SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&TAG_VERSION) {
        rest = read_value(rest)?.2;
    }
    // serialNumber, signature, issuer, validity.
    for _ in 0..4 {
        rest = read_value(rest)?.2;
    }
    let (subject, _) = expect(rest, TAG_SEQUENCE)?;
    Some(subject)
}

/// The subject's common names, joined with "," if there are several (RabbitMQ does the same).
/// None if the certificate does not parse or has no common name.
pub fn common_name(certificate: &[u8]) -> Option<String> {
    let mut names = Vec::new();
    let mut relative_names = subject(certificate)?;
    while !relative_names.is_empty() {
        let (set, rest) = expect(relative_names, TAG_SET)?;
        relative_names = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, rest) = expect(attributes, TAG_SEQUENCE)?;
            attributes = rest;
            let (oid, value) = expect(attribute, TAG_OID)?;
            if oid != OID_COMMON_NAME {
                continue;
            }
            let (tag, text, _) = read_value(value)?;
            if !NAME_STRING_TAGS.contains(&tag) {
                return None;
            }
            names.push(std::str::from_utf8(text).ok()?.to_owned());
        }
    }
    (!names.is_empty()).then(|| names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of one value with a short or long length.
    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn attribute(oid: &[u8], tag: u8, text: &str) -> Vec<u8> {
        der(
            TAG_SET,
            &der(
                TAG_SEQUENCE,
                &[der(TAG_OID, oid), der(tag, text.as_bytes())].concat(),
            ),
        )
    }

    fn certificate(subject: &[u8], with_version: bool) -> Vec<u8> {
        let mut tbs = Vec::new();
        if with_version {
            tbs.extend(der(TAG_VERSION, &der(0x02, &[2])));
        }
        tbs.extend(der(0x02, &[1, 2, 3])); // serialNumber
        tbs.extend(der(TAG_SEQUENCE, &der(TAG_OID, &[0x2a, 0x86]))); // signature
        tbs.extend(der(
            TAG_SEQUENCE,
            &attribute(OID_COMMON_NAME, 0x0c, "issuer CA"),
        ));
        tbs.extend(der(
            TAG_SEQUENCE,
            &[der(0x17, b"a"), der(0x17, b"b")].concat(),
        )); // validity
        tbs.extend(der(TAG_SEQUENCE, subject));
        tbs.extend(der(TAG_SEQUENCE, &[0u8; 200])); // subjectPublicKeyInfo, long form length
        der(
            TAG_SEQUENCE,
            &[
                der(TAG_SEQUENCE, &tbs),
                der(TAG_SEQUENCE, &[]),
                der(0x03, &[0]),
            ]
            .concat(),
        )
    }

    const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

    #[test]
    fn finds_the_subject_common_name_not_the_issuer() {
        let subject = [
            attribute(OID_ORGANIZATION, 0x13, "Hare"),
            attribute(OID_COMMON_NAME, 0x0c, "alice"),
        ]
        .concat();
        assert_eq!(
            common_name(&certificate(&subject, true)).as_deref(),
            Some("alice")
        );
        assert_eq!(
            common_name(&certificate(&subject, false)).as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn joins_several_common_names() {
        let subject = [
            attribute(OID_COMMON_NAME, 0x13, "a"),
            attribute(OID_COMMON_NAME, 0x16, "b"),
        ]
        .concat();
        assert_eq!(
            common_name(&certificate(&subject, true)).as_deref(),
            Some("a,b")
        );
    }

    #[test]
    fn no_common_name_or_an_unusual_string_type_is_none() {
        let organization_only = attribute(OID_ORGANIZATION, 0x13, "Hare");
        assert_eq!(common_name(&certificate(&organization_only, true)), None);
        let bmp = attribute(OID_COMMON_NAME, 0x1e, "ab");
        assert_eq!(common_name(&certificate(&bmp, true)), None);
    }

    #[test]
    fn every_truncation_and_corruption_is_none_without_panicking() {
        let cert = certificate(&attribute(OID_COMMON_NAME, 0x0c, "alice"), true);
        for length in 0..cert.len() {
            assert_eq!(common_name(&cert[..length]), None, "truncated at {length}");
        }
        for index in 0..cert.len() {
            for byte in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut corrupt = cert.clone();
                corrupt[index] = byte;
                let _ = common_name(&corrupt);
            }
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(&[0x30, 0x80, 0x00, 0x00]), None);
    }
}
