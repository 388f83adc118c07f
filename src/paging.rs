//! Paging for the list calls (`ListCoins`, `ListClients`, the admin API's
//! `limit`/`continue`): page sizes, and opaque page tokens. A token is the
//! hex of its kind, the last key returned and the query it was issued
//! for, so it is refused with another query or by another list; a list
//! sorted by key then resumes strictly after that key, so an entry that
//! appears mid-listing is returned at most once and one present
//! throughout is never missed.

use tonic::Status;

/// The longest token accepted.
const MAX_TOKEN_LEN: usize = 2048;

/// `requested` (0: `default`), refused above `max`.
pub fn page_size(requested: u32, default: usize, max: usize) -> Result<usize, Status> {
    match requested as usize {
        0 => Ok(default),
        n if n > max => Err(Status::invalid_argument(format!(
            "page_size {n} is more than {max}"
        ))),
        n => Ok(n),
    }
}

/// The token of the page after the one that ended with `last`.
pub fn encode(kind: &str, last: &str, query: &str) -> String {
    format!("{kind}\0{last}\0{query}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The last key of the previous page, from a token of `kind` issued for
/// `query`.
pub fn decode(kind: &str, token: &str, query: &str) -> Result<String, Status> {
    let bad = || Status::invalid_argument("page_token is not a token this server issued");
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad());
    }
    let text = unhex(token)
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(bad)?;
    let mut parts = text.splitn(3, '\0');
    let (Some(k), Some(last), Some(q)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if k != kind || last.is_empty() {
        return Err(bad());
    }
    if q != query {
        return Err(Status::invalid_argument(
            "page_token was issued for a different filter (the filters must stay the same while paging)",
        ));
    }
    Ok(last.to_owned())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn tokens_round_trip_and_are_bound_to_kind_and_query() {
        let t = encode("c1", "DOGE", "1\0coin");
        assert_eq!(decode("c1", &t, "1\0coin").unwrap(), "DOGE");
        assert_eq!(
            decode("c1", &t, "0\0coin").unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            decode("l1", &t, "1\0coin").unwrap_err().code(),
            Code::InvalidArgument
        );
        for bad in ["zz", "abc", "00", "é", &encode("c1", "", "")] {
            assert_eq!(
                decode("c1", bad, "").unwrap_err().code(),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0, 50, 500).unwrap(), 50);
        assert_eq!(page_size(500, 50, 500).unwrap(), 500);
        assert_eq!(
            page_size(501, 50, 500).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
