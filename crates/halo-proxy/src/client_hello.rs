//! The server name of a TLS ClientHello, read without terminating TLS (for
//! `tls-passthrough`): the handshake bytes are gathered across records, the
//! hello is walked to its `server_name` extension (RFC 6066 §3). Sans-io:
//! give it what arrived so far; it says whether it needs more.

/// Largest ClientHello accepted. Real ones are a few hundred bytes to a few
/// KiB (post-quantum key shares); a peer that sends more is not a browser.
pub const MAX_HELLO: usize = 64 * 1024;

/// What the bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A complete ClientHello; its SNI host name (lower-case, no trailing
    /// dot), if it has one.
    Complete(Option<String>),
    /// Not all of it yet.
    NeedMore,
    /// Not a TLS ClientHello (or one larger than [`MAX_HELLO`]).
    Invalid(&'static str),
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// Reads the ClientHello at the start of `buf`.
#[must_use]
pub fn parse(buf: &[u8]) -> Hello {
    // Handshake bytes, from as many records as it takes.
    let mut handshake: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + 5) else {
            return need_more(buf.len());
        };
        if header[0] != HANDSHAKE {
            return Hello::Invalid("not a TLS handshake record");
        }
        if header[1] != 3 {
            return Hello::Invalid("not a TLS record version");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16_384 + 256 {
            return Hello::Invalid("bad TLS record length");
        }
        let Some(fragment) = buf.get(at + 5..at + 5 + len) else {
            return need_more(buf.len());
        };
        handshake.extend_from_slice(fragment);
        at += 5 + len;
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != CLIENT_HELLO {
            return Hello::Invalid("the first handshake message is not a ClientHello");
        }
        let body_len = usize::from(handshake[1]) << 16
            | usize::from(handshake[2]) << 8
            | usize::from(handshake[3]);
        if body_len > MAX_HELLO {
            return Hello::Invalid("ClientHello too large");
        }
        if handshake.len() >= 4 + body_len {
            return match server_name(&handshake[4..4 + body_len]) {
                Ok(name) => Hello::Complete(name),
                Err(e) => Hello::Invalid(e),
            };
        }
    }
}

fn need_more(have: usize) -> Hello {
    if have > MAX_HELLO + 1024 {
        Hello::Invalid("ClientHello too large")
    } else {
        Hello::NeedMore
    }
}

/// A cursor that fails instead of reading past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("truncated ClientHello");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn server_name(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader { buf: body };
    let _version = r.u16()?;
    let _random = r.take(32)?;
    let _session_id = r.vec8()?;
    let _suites = r.vec16()?;
    let _compression = r.vec8()?;
    if r.buf.is_empty() {
        // No extensions at all (an SSL 3.0-style hello): no SNI.
        return Ok(None);
    }
    let mut exts = Reader { buf: r.vec16()? };
    while !exts.buf.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = Reader {
            buf: Reader { buf: data }.vec16()?,
        };
        while !list.buf.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type != HOST_NAME {
                continue;
            }
            if name.is_empty()
                || !name
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'))
            {
                return Err("bad server name in the ClientHello");
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            return Ok(Some(name.trim_end_matches('.').to_owned()));
        }
        return Ok(None);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as a client writes it, with `sni` (none if empty) and
    /// `padding` bytes of an extra extension, in records of at most `split`
    /// bytes.
    fn hello(sni: &str, padding: usize, split: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        if !sni.is_empty() {
            let mut list = vec![HOST_NAME];
            list.extend_from_slice(&u16::try_from(sni.len()).unwrap().to_be_bytes());
            list.extend_from_slice(sni.as_bytes());
            let mut data = u16::try_from(list.len()).unwrap().to_be_bytes().to_vec();
            data.extend_from_slice(&list);
            exts.extend_from_slice(&EXT_SERVER_NAME.to_be_bytes());
            exts.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
            exts.extend_from_slice(&data);
        }
        // Padding extension (21).
        exts.extend_from_slice(&21u16.to_be_bytes());
        exts.extend_from_slice(&u16::try_from(padding).unwrap().to_be_bytes());
        exts.extend(std::iter::repeat_n(0u8, padding));
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&u16::try_from(exts.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![CLIENT_HELLO];
        hs.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut out = Vec::new();
        for chunk in hs.chunks(split) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn finds_the_name_in_one_record_or_many() {
        for split in [16_384, 100, 7] {
            let bytes = hello("App.Example.COM.", 300, split);
            assert_eq!(
                parse(&bytes),
                Hello::Complete(Some("app.example.com".into())),
                "split {split}"
            );
            // Every prefix asks for more, never errs.
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse(&bytes[..cut]),
                    Hello::NeedMore,
                    "split {split} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn no_sni_and_not_tls() {
        assert_eq!(parse(&hello("", 10, 16_384)), Hello::Complete(None));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Hello::Invalid(_)
        ));
        assert!(matches!(parse(&[22, 3, 1, 0, 0]), Hello::Invalid(_)));
        // A server hello (type 2) is not a client's.
        let mut b = hello("a.example", 0, 16_384);
        b[5] = 2;
        assert!(matches!(parse(&b), Hello::Invalid(_)));
    }

    #[test]
    fn lies_in_lengths_are_invalid_not_panics() {
        let good = hello("a.example.com", 50, 16_384);
        // Flip every byte in turn: any answer is fine, a panic is not.
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = parse(&b);
            }
        }
        // A hello claiming more than MAX_HELLO.
        let mut b = good.clone();
        b[6] = 0x10; // body length 0x10xxxx
        assert!(matches!(parse(&b), Hello::Invalid(_)));
    }
}
