//! AWS Signature Version 4 (the "Signature Version 4 signing process" of
//! the AWS General Reference): canonical request, string to sign, signing
//! key, `Authorization` header. Pure functions of the request and the
//! credentials; the clock is the caller's.

use super::*;

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub(super) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&k, data).as_ref().to_vec()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// as SigV4 canonicalizes query strings.
pub(super) fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time.
pub(super) fn amz_date(secs: i64) -> String {
    let (y, m, d) = crate::clock::civil(secs);
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// A request to sign: method, path (already canonical: Route 53 paths
/// need no encoding), query pairs (unencoded) and headers besides `host`.
pub struct SignRequest<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// AWS Signature Version 4 ("Create a signed AWS API request", AWS IAM
/// user guide): the `Authorization` header value for `req` at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`, also sent as `X-Amz-Date`), in `region` for
/// `service`.
///
/// ```text
/// CanonicalRequest = Method \n CanonicalURI \n CanonicalQueryString \n
///                    CanonicalHeaders \n SignedHeaders \n HexEncode(Hash(Payload))
/// StringToSign     = "AWS4-HMAC-SHA256" \n amz_date \n scope \n HexEncode(Hash(CanonicalRequest))
/// kSigning         = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
/// ```
pub fn sign_v4(
    req: &SignRequest<'_>,
    creds: &Credentials,
    amz_date: &str,
    region: &str,
    service: &str,
) -> String {
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.push(("host".to_string(), req.host.to_string()));
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        req.path,
        sha256_hex(req.body)
    );
    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

// ------------------------------------------------------------ XML
