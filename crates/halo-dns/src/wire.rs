//! DNS wire format, the parts halo needs, written for the query path.
//!
//! Hand-written rather than built on a general DNS crate because the issue's
//! fast path must not allocate per query: a query is parsed in place (the name
//! lower-cased into a caller's stack buffer), and the reply is written into a
//! buffer the socket loop reuses. Owner names in answers are a pointer to the
//! question (so the query's case is echoed, RFC 4343). Every length is checked
//! before it is used; malformed input is an error value, never a panic.
//!
//! The peer side (queries to other nodes, NOTIFY) uses the same module; it
//! allocates, which is fine off the query path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use halo_config::{RecordData, StaticRecord};
use halo_gslb::{Answer, Authority, Rcode, Response, Snapshot, rtype};

/// Header length.
pub const HEADER: usize = 12;
/// The UDP payload size halo advertises and sends up to (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Longest name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;
/// QUERY opcode.
pub const OPCODE_QUERY: u8 = 0;
/// NOTIFY opcode (RFC 1996).
pub const OPCODE_NOTIFY: u8 = 4;
const CLASS_IN: u16 = 1;
const ECS_OPTION: u16 = 8;
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_CD: u16 = 0x0010;
/// Extended RCODE BADVERS (RFC 6891): upper 8 bits 1, lower 4 bits 0.
const BADVERS_HIGH: u8 = 1;

/// EDNS Client Subnet from a query (RFC 7871).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// The client network's address (bits past `source` are zero).
    pub address: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

/// The OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub payload: u16,
    /// DO bit, echoed (RFC 3225).
    pub dnssec_ok: bool,
    /// Client subnet, if sent.
    pub ecs: Option<Ecs>,
}

/// A query parsed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'b> {
    /// Message ID.
    pub id: u16,
    /// Opcode.
    pub opcode: u8,
    /// RD and CD flags, echoed.
    flags: u16,
    /// The question section as received (name, type, class).
    pub question: &'b [u8],
    /// Length of the question's name on the wire.
    pub name_len: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// OPT, if present.
    pub edns: Option<Edns>,
}

/// Why a message gets no normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject<'b> {
    /// No reply at all: too short for a header, or a response (QR set) — never
    /// answer those, so two servers cannot bounce errors at each other.
    Ignore,
    /// Reply with this RCODE (FORMERR, NOTIMP), echoing what could be parsed.
    Error {
        /// ID.
        id: u16,
        /// Opcode.
        opcode: u8,
        /// RD/CD.
        flags: u16,
        /// The question, when it parsed.
        question: Option<&'b [u8]>,
        /// RCODE.
        rcode: Rcode,
        /// An OPT goes in the reply (the query had one).
        edns: bool,
    },
    /// EDNS version other than 0: BADVERS with an OPT (RFC 6891 §6.1.3).
    BadVersion {
        /// ID.
        id: u16,
        /// RD/CD.
        flags: u16,
        /// The question.
        question: &'b [u8],
    },
}

/// What kind of problem a rejected message had, for counters and logs.
impl Reject<'_> {
    /// A short name for logs and counters.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Reject::Ignore => "ignored",
            Reject::Error {
                rcode: Rcode::NotImp,
                ..
            } => "notimp",
            Reject::Error { .. } => "formerr",
            Reject::BadVersion { .. } => "badvers",
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses a query. The question name goes into `name` lower-cased and dotted
/// (no trailing dot); its length is returned beside the parse. A `.` inside a
/// label becomes 0xFF so it can never match a configured name.
///
/// # Errors
/// [`Reject`] says how to answer a message that is not a well-formed query.
pub fn parse_query<'b>(
    msg: &'b [u8],
    name: &mut [u8; MAX_NAME],
) -> Result<(Parsed<'b>, usize), Reject<'b>> {
    if msg.len() < HEADER {
        return Err(Reject::Ignore);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & FLAG_QR != 0 {
        return Err(Reject::Ignore);
    }
    let opcode = u8::try_from((flags >> 11) & 0xF).unwrap_or(0);
    let echo = flags & (FLAG_RD | FLAG_CD);
    let qd = u16_at(msg, 4).unwrap_or(0);
    let an = u16_at(msg, 6).unwrap_or(0);
    let ns = u16_at(msg, 8).unwrap_or(0);
    let ar = u16_at(msg, 10).unwrap_or(0);
    let formerr = |question, edns| Reject::Error {
        id,
        opcode,
        flags: echo,
        question,
        rcode: Rcode::FormErr,
        edns,
    };
    if opcode != OPCODE_QUERY && opcode != OPCODE_NOTIFY {
        // Unknown opcodes get NOTIMP without parsing further (RFC 1035 §4.1.1).
        return Err(Reject::Error {
            id,
            opcode,
            flags: echo,
            question: None,
            rcode: Rcode::NotImp,
            edns: false,
        });
    }
    if qd != 1 {
        return Err(formerr(None, false));
    }
    let (name_len, dotted) = read_question_name(msg, HEADER, name).ok_or(formerr(None, false))?;
    let qend = HEADER + name_len + 4;
    if msg.len() < qend {
        return Err(formerr(None, false));
    }
    let question = &msg[HEADER..qend];
    let qtype = u16_at(msg, HEADER + name_len).unwrap_or(0);
    let qclass = u16_at(msg, HEADER + name_len + 2).unwrap_or(0);
    // A query carries no answers; a NOTIFY may carry the new SOA (RFC 1996 §3.7),
    // which halo does not need: skip those records.
    if opcode == OPCODE_QUERY && (an != 0 || ns != 0) {
        return Err(formerr(Some(question), false));
    }
    let mut at = qend;
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        at = skip_record(msg, at)
            .ok_or(formerr(Some(question), false))?
            .0;
    }
    let mut edns = None;
    let mut bad_version = false;
    for _ in 0..ar {
        let (next, rec) = skip_record(msg, at).ok_or(formerr(Some(question), edns.is_some()))?;
        if rec.rtype == rtype::OPT {
            // One OPT, owned by the root (RFC 6891 §6.1.1).
            if edns.is_some() || !rec.owner_is_root {
                return Err(formerr(Some(question), true));
            }
            let version = u8::try_from((rec.ttl >> 16) & 0xFF).unwrap_or(0);
            bad_version = version != 0;
            edns = Some(Edns {
                payload: rec.class,
                dnssec_ok: rec.ttl & 0x8000 != 0,
                ecs: parse_options(&msg[rec.rdata.clone()])
                    .map_err(|()| formerr(Some(question), true))?,
            });
        }
        at = next;
    }
    if at != msg.len() {
        return Err(formerr(Some(question), edns.is_some()));
    }
    if bad_version {
        return Err(Reject::BadVersion {
            id,
            flags: echo,
            question,
        });
    }
    Ok((
        Parsed {
            id,
            opcode,
            flags: echo,
            question,
            name_len,
            qtype,
            qclass,
            edns,
        },
        dotted,
    ))
}

/// Reads an uncompressed name at `at` into `out` (dotted, lower-case). Returns
/// (wire length, dotted length).
fn read_question_name(msg: &[u8], at: usize, out: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let mut pos = at;
    let mut len = 0usize;
    loop {
        let l = usize::from(*msg.get(pos)?);
        if l == 0 {
            pos += 1;
            break;
        }
        // Compression (0xC0) or the reserved label types: not in a question.
        if l > 63 {
            return None;
        }
        let label = msg.get(pos + 1..pos + 1 + l)?;
        if pos + 1 + l - at > MAX_NAME - 1 {
            return None;
        }
        if len > 0 {
            out[len] = b'.';
            len += 1;
        }
        // One bounds check per label, not per byte.
        let dst = out.get_mut(len..len + l)?;
        for (d, &b) in dst.iter_mut().zip(label) {
            *d = if b == b'.' {
                0xFF
            } else {
                b.to_ascii_lowercase()
            };
        }
        len += l;
        pos += 1 + l;
    }
    Some((pos - at, len))
}

/// What [`skip_record`] saw.
struct RecordView {
    owner_is_root: bool,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: std::ops::Range<usize>,
}

/// Skips a name (compressed or not) at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    let mut labels = 0;
    loop {
        let l = *msg.get(at)?;
        match l {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(l),
            0xC0..=0xFF => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
        labels += 1;
        if labels > 128 {
            return None;
        }
    }
}

fn skip_record(msg: &[u8], at: usize) -> Option<(usize, RecordView)> {
    let owner_is_root = *msg.get(at)? == 0;
    let p = skip_name(msg, at)?;
    let rtype = u16_at(msg, p)?;
    let class = u16_at(msg, p + 2)?;
    let ttl = u32::from(u16_at(msg, p + 4)?) << 16 | u32::from(u16_at(msg, p + 6)?);
    let rdlen = usize::from(u16_at(msg, p + 8)?);
    let start = p + 10;
    let end = start + rdlen;
    if end > msg.len() {
        return None;
    }
    Some((
        end,
        RecordView {
            owner_is_root,
            rtype,
            class,
            ttl,
            rdata: start..end,
        },
    ))
}

/// EDNS options: finds a valid ECS (RFC 7871 §6), ignores the rest.
fn parse_options(mut opts: &[u8]) -> Result<Option<Ecs>, ()> {
    let mut ecs = None;
    while !opts.is_empty() {
        let code = u16_at(opts, 0).ok_or(())?;
        let len = usize::from(u16_at(opts, 2).ok_or(())?);
        let data = opts.get(4..4 + len).ok_or(())?;
        if code == ECS_OPTION {
            if ecs.is_some() {
                return Err(());
            }
            ecs = parse_ecs(data)?;
        }
        opts = &opts[4 + len..];
    }
    Ok(ecs)
}

fn parse_ecs(data: &[u8]) -> Result<Option<Ecs>, ()> {
    let family = u16_at(data, 0).ok_or(())?;
    let source = *data.get(2).ok_or(())?;
    let scope = *data.get(3).ok_or(())?;
    let addr = &data[4.min(data.len())..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    // In a query SCOPE is 0 and ADDRESS has exactly the bytes SOURCE needs, with
    // the bits past SOURCE zero.
    if source > max || scope != 0 || addr.len() != usize::from(source).div_ceil(8) {
        return Err(());
    }
    let mut full = [0u8; 16];
    full[..addr.len()].copy_from_slice(addr);
    let address = if family == 1 {
        IpAddr::V4(Ipv4Addr::new(full[0], full[1], full[2], full[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(full))
    };
    let value: u128 = match address {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = if source == 0 { value } else { value << source };
    if host_bits != 0 {
        return Err(());
    }
    // SOURCE 0 (the client asks not to be located, RFC 7871 §7.1.2) is kept:
    // the reply still carries the option.
    Ok(Some(Ecs { address, source }))
}

// === Writing ===

/// Appends `name` (dotted, no trailing dot; "" = root) uncompressed.
pub fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // Config names are validated (labels ≤ 63 bytes).
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Record header after the owner: type, class IN, TTL; returns where RDLENGTH goes.
fn put_rr_head(out: &mut Vec<u8>, rtype: u16, ttl: u32) -> usize {
    put_u16(out, rtype);
    put_u16(out, CLASS_IN);
    put_u32(out, ttl);
    let at = out.len();
    put_u16(out, 0);
    at
}

fn end_rdata(out: &mut [u8], len_at: usize) {
    let len = u16::try_from(out.len() - len_at - 2).unwrap_or(u16::MAX);
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

fn put_ptr(out: &mut Vec<u8>, offset: usize) {
    // Offsets here are inside the question (< 300), far below 0x3FFF.
    put_u16(out, 0xC000 | u16::try_from(offset).unwrap_or(0));
}

fn put_address(out: &mut Vec<u8>, owner_ptr: usize, ttl: u32, a: IpAddr) {
    // The whole record in one copy: this runs for every address of every
    // answer, and piecewise pushes cost a capacity check each.
    // Offsets here are inside the question (< 300), far below 0x3FFF.
    let [p0, p1] = (0xC000 | u16::try_from(owner_ptr).unwrap_or(0)).to_be_bytes();
    let [c0, c1] = CLASS_IN.to_be_bytes();
    let [t0, t1, t2, t3] = ttl.to_be_bytes();
    match a {
        IpAddr::V4(v4) => {
            let [a0, a1, a2, a3] = v4.octets();
            let [r0, r1] = rtype::A.to_be_bytes();
            out.extend_from_slice(&[p0, p1, r0, r1, c0, c1, t0, t1, t2, t3, 0, 4, a0, a1, a2, a3]);
        }
        IpAddr::V6(v6) => {
            let [r0, r1] = rtype::AAAA.to_be_bytes();
            out.extend_from_slice(&[p0, p1, r0, r1, c0, c1, t0, t1, t2, t3, 0, 16]);
            out.extend_from_slice(&v6.octets());
        }
    }
}

fn put_character_strings(out: &mut Vec<u8>, parts: &[String]) {
    for p in parts {
        let b = &p.as_bytes()[..p.len().min(255)];
        out.push(u8::try_from(b.len()).unwrap_or(255));
        out.extend_from_slice(b);
    }
}

fn put_static(out: &mut Vec<u8>, owner: Owner<'_>, r: &StaticRecord) {
    owner.put(out);
    let at = put_rr_head(out, r.data.rtype(), r.ttl);
    match &r.data {
        RecordData::A(a) => out.extend_from_slice(&a.octets()),
        RecordData::Aaaa(a) => out.extend_from_slice(&a.octets()),
        RecordData::Cname(n) => put_name(out, n),
        RecordData::Txt(parts) => put_character_strings(out, parts),
        RecordData::Mx {
            preference,
            exchange,
        } => {
            put_u16(out, *preference);
            put_name(out, exchange);
        }
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            put_u16(out, *priority);
            put_u16(out, *weight);
            put_u16(out, *port);
            put_name(out, target);
        }
    }
    end_rdata(out, at);
}

/// An owner name: a pointer into the question, or written out.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Ptr(usize),
    Name(&'a str),
}

impl Owner<'_> {
    fn put(self, out: &mut Vec<u8>) {
        match self {
            Owner::Ptr(at) => put_ptr(out, at),
            Owner::Name(n) => put_name(out, n),
        }
    }
}

/// Writes the header and question of a reply; counts are patched later.
fn put_head(out: &mut Vec<u8>, id: u16, opcode: u8, flags: u16, question: Option<&[u8]>) {
    out.clear();
    let [i0, i1] = id.to_be_bytes();
    let [f0, f1] = (FLAG_QR | u16::from(opcode) << 11 | flags).to_be_bytes();
    out.extend_from_slice(&[
        i0,
        i1,
        f0,
        f1,
        0,
        u8::from(question.is_some()),
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    if let Some(q) = question {
        out.extend_from_slice(q);
    }
}

fn set_count(out: &mut [u8], section: usize, n: u16) {
    out[4 + 2 * section..6 + 2 * section].copy_from_slice(&n.to_be_bytes());
}

fn put_opt(out: &mut Vec<u8>, ext_rcode: u8, dnssec_ok: bool, ecs: Option<(Ecs, u8)>) {
    out.push(0);
    put_u16(out, rtype::OPT);
    put_u16(out, EDNS_PAYLOAD);
    put_u32(
        out,
        u32::from(ext_rcode) << 24 | if dnssec_ok { 0x8000 } else { 0 },
    );
    let at = out.len();
    put_u16(out, 0);
    if let Some((e, scope)) = ecs {
        put_u16(out, ECS_OPTION);
        let bytes = usize::from(e.source).div_ceil(8);
        put_u16(out, u16::try_from(4 + bytes).unwrap_or(0));
        put_u16(out, if e.address.is_ipv4() { 1 } else { 2 });
        out.push(e.source);
        out.push(scope);
        match e.address {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..bytes.min(4)]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..bytes.min(16)]),
        }
    }
    end_rdata(out, at);
}

/// The reply to a rejected message, or None for [`Reject::Ignore`].
pub fn write_reject(out: &mut Vec<u8>, reject: &Reject<'_>) -> bool {
    match *reject {
        Reject::Ignore => false,
        Reject::Error {
            id,
            opcode,
            flags,
            question,
            rcode,
            edns,
        } => {
            put_head(out, id, opcode, flags | rcode as u16, question);
            if edns {
                put_opt(out, 0, false, None);
                set_count(out, 3, 1);
            }
            true
        }
        Reject::BadVersion {
            id,
            flags,
            question,
        } => {
            put_head(out, id, OPCODE_QUERY, flags, Some(question));
            put_opt(out, BADVERS_HIGH, false, None);
            set_count(out, 3, 1);
            true
        }
    }
}

/// A reply with no records to a well-formed message: a NOTIFY acknowledgement
/// (RFC 1996 §4.7, authoritative) or a refusal; an OPT if the query had one.
pub fn write_bare(out: &mut Vec<u8>, q: &Parsed<'_>, rcode: Rcode, authoritative: bool) {
    let aa = if authoritative { FLAG_AA } else { 0 };
    put_head(
        out,
        q.id,
        q.opcode,
        q.flags | aa | rcode as u16,
        Some(q.question),
    );
    if let Some(e) = q.edns {
        put_opt(out, 0, e.dnssec_ok, None);
        set_count(out, 3, 1);
    }
}

/// Writes the reply for `q` from `r` into `out` (cleared first). Over UDP the
/// reply is cut to the client's size: a reply that does not fit is sent with
/// TC=1 and no records, so the client retries over TCP. `dotted_len` is the
/// length of the question name as [`parse_query`] returned it.
pub fn write_response(
    out: &mut Vec<u8>,
    q: &Parsed<'_>,
    dotted_len: usize,
    r: &Response<'_>,
    snap: &Snapshot,
    udp: bool,
) {
    let mut flags = q.flags | r.rcode as u16;
    if r.authoritative {
        flags |= FLAG_AA;
    }
    put_head(out, q.id, q.opcode, flags, Some(q.question));
    let zone = &snap.zone;
    let qname = Owner::Ptr(HEADER);
    // Where the apex starts inside the question name: dotted and wire offsets
    // of a label start are the same.
    let apex = if r.authoritative && dotted_len >= zone.apex().len() {
        Owner::Ptr(HEADER + dotted_len - zone.apex().len())
    } else {
        Owner::Name(zone.apex())
    };
    let soa_ttl = zone.soa.minimum;

    let mut an: u16 = 0;
    match r.answer {
        Answer::None => {}
        Answer::Addresses { ttl, addresses } => {
            for a in addresses {
                put_address(out, HEADER, ttl, *a);
                an += 1;
            }
        }
        Answer::Records { records, rtype } => {
            for rec in records.iter().filter(|x| x.data.rtype() == rtype) {
                put_static(out, qname, rec);
                an += 1;
            }
        }
        Answer::Soa => {
            put_soa(out, qname, snap, soa_ttl);
            an = 1;
        }
        Answer::Ns => {
            for ns in &zone.nameservers {
                qname.put(out);
                let at = put_rr_head(out, rtype::NS, zone.default_ttl);
                put_name(out, ns);
                end_rdata(out, at);
                an += 1;
            }
        }
        Answer::SiteTxt => {
            put_site_txt(out, qname, snap);
            an = 1;
        }
        Answer::ProbesTxt(service) => {
            for (address, up) in snap.probes.get(service).into_iter().flatten() {
                put_probe_txt(out, qname, *address, *up);
                an += 1;
            }
        }
    }
    let mut ns: u16 = 0;
    if r.authority == Authority::Soa {
        put_soa(out, apex, snap, soa_ttl);
        ns = 1;
    }
    let mut ar: u16 = 0;
    if r.glue {
        for g in &zone.glue {
            put_static(out, Owner::Name(&g.name), g);
            ar += 1;
        }
    }
    if r.site_txt {
        put_site_txt(out, qname, snap);
        ar += 1;
    }
    if let Some(e) = q.edns {
        put_opt(out, 0, e.dnssec_ok, e.ecs.map(|c| (c, r.ecs_scope)));
        ar += 1;
    }
    set_count(out, 1, an);
    set_count(out, 2, ns);
    set_count(out, 3, ar);

    if udp && out.len() > udp_limit(q.edns) {
        // Truncate: header and question, TC=1, only the OPT (RFC 6891 §7).
        put_head(out, q.id, q.opcode, flags | FLAG_TC, Some(q.question));
        if let Some(e) = q.edns {
            put_opt(out, 0, e.dnssec_ok, e.ecs.map(|c| (c, r.ecs_scope)));
            set_count(out, 3, 1);
        }
    }
}

/// Whether a reply has TC set.
#[must_use]
pub fn is_truncated(msg: &[u8]) -> bool {
    u16_at(msg, 2).is_some_and(|f| f & FLAG_TC != 0)
}

/// The largest UDP reply for a query: 512 without EDNS, else the client's
/// size within 512..=1232.
#[must_use]
pub fn udp_limit(edns: Option<Edns>) -> usize {
    edns.map_or(512, |e| usize::from(e.payload.clamp(512, EDNS_PAYLOAD)))
}

fn put_soa(out: &mut Vec<u8>, owner: Owner<'_>, snap: &Snapshot, ttl: u32) {
    let soa = &snap.zone.soa;
    owner.put(out);
    let at = put_rr_head(out, rtype::SOA, ttl);
    put_name(out, &soa.mname);
    put_name(out, &soa.rname);
    put_u32(out, snap.serial);
    put_u32(out, soa.refresh);
    put_u32(out, soa.retry);
    put_u32(out, soa.expire);
    put_u32(out, soa.minimum);
    end_rdata(out, at);
}

fn put_site_txt(out: &mut Vec<u8>, owner: Owner<'_>, snap: &Snapshot) {
    owner.put(out);
    let at = put_rr_head(out, rtype::TXT, snap.zone.default_ttl);
    let site = snap.zone.site_name(snap.zone.site);
    let len = 5 + site.len().min(250);
    out.push(u8::try_from(len).unwrap_or(255));
    out.extend_from_slice(b"site=");
    out.extend_from_slice(&site.as_bytes()[..site.len().min(250)]);
    end_rdata(out, at);
}

/// One `probes-` TXT record: `"<address> up"` or `"<address> down"`, TTL 0
/// (a peer asks every `peer_interval`; nothing should cache it).
fn put_probe_txt(out: &mut Vec<u8>, owner: Owner<'_>, address: IpAddr, up: bool) {
    use std::io::Write as _;
    owner.put(out);
    let at = put_rr_head(out, rtype::TXT, 0);
    let len_at = out.len();
    out.push(0);
    let _ = write!(out, "{address} {}", if up { "up" } else { "down" });
    out[len_at] = u8::try_from(out.len() - len_at - 1).unwrap_or(u8::MAX);
    end_rdata(out, at);
}

/// The probe verdicts of a `probes-` TXT answer (strings that do not parse
/// are skipped: a newer peer may say more).
#[must_use]
pub fn parse_probe_texts(texts: &[String]) -> Vec<(IpAddr, bool)> {
    texts
        .iter()
        .filter_map(|t| {
            let (address, verdict) = t.split_once(' ')?;
            let up = match verdict {
                "up" => true,
                "down" => false,
                _ => return None,
            };
            Some((address.parse().ok()?, up))
        })
        .collect()
}

// === Peer side: queries out, answers in ===

/// A query for `name` (dotted) of `qtype`, with an OPT so long answers fit.
#[must_use]
pub fn build_query(id: u16, name: &str, qtype: u16, opcode: u8) -> Vec<u8> {
    query(id, name, qtype, opcode, None)
}

/// [`build_query`] with EDNS Client Subnet `ecs` (scope 0), as a resolver
/// sends it on a client's behalf (RFC 7871).
#[must_use]
pub fn build_query_ecs(id: u16, name: &str, qtype: u16, ecs: Ecs) -> Vec<u8> {
    query(id, name, qtype, OPCODE_QUERY, Some(ecs))
}

fn query(id: u16, name: &str, qtype: u16, opcode: u8, ecs: Option<Ecs>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_u16(&mut out, id);
    let aa = if opcode == OPCODE_NOTIFY { FLAG_AA } else { 0 };
    put_u16(&mut out, u16::from(opcode) << 11 | aa);
    put_u16(&mut out, 1);
    put_u16(&mut out, 0);
    put_u16(&mut out, 0);
    put_u16(&mut out, u16::from(opcode == OPCODE_QUERY));
    put_name(&mut out, name);
    put_u16(&mut out, qtype);
    put_u16(&mut out, CLASS_IN);
    if opcode == OPCODE_QUERY {
        put_opt(&mut out, 0, false, ecs.map(|e| (e, 0)));
    }
    out
}

/// What a peer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    /// RCODE (low 4 bits).
    pub rcode: u8,
    /// TC was set.
    pub truncated: bool,
    /// A and AAAA records of the answer section.
    pub addresses: Vec<IpAddr>,
    /// `site=` from a TXT record anywhere in the reply.
    pub site: Option<String>,
    /// The strings of the answer section's TXT records (UTF-8 ones).
    pub texts: Vec<String>,
}

/// Whether a peer's `site=` is a name a config could give a site: 1 to 64
/// letters, digits, `-`, `_` or `.`.
#[must_use]
pub fn is_site_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses a reply to [`build_query`] with `id` and `opcode`; None if it is not one.
#[must_use]
pub fn parse_reply(msg: &[u8], id: u16, opcode: u8) -> Option<PeerAnswer> {
    if msg.len() < HEADER || u16_at(msg, 0)? != id {
        return None;
    }
    let flags = u16_at(msg, 2)?;
    if flags & FLAG_QR == 0 || u8::try_from((flags >> 11) & 0xF).ok()? != opcode {
        return None;
    }
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let ns = u16_at(msg, 8)?;
    let ar = u16_at(msg, 10)?;
    let mut at = HEADER;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    let mut answer = PeerAnswer {
        rcode: u8::try_from(flags & 0xF).ok()?,
        truncated: flags & FLAG_TC != 0,
        addresses: Vec::new(),
        site: None,
        texts: Vec::new(),
    };
    for i in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
        let (next, rec) = skip_record(msg, at)?;
        let data = &msg[rec.rdata.clone()];
        match (rec.rtype, data.len()) {
            (rtype::A, 4) if i < u32::from(an) => {
                answer.addresses.push(IpAddr::V4(Ipv4Addr::new(
                    data[0], data[1], data[2], data[3],
                )));
            }
            (rtype::AAAA, 16) if i < u32::from(an) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                answer.addresses.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            (rtype::TXT, n) if n > 0 => {
                if i < u32::from(an) {
                    let mut rest = data;
                    while let Some((&len, tail)) = rest.split_first() {
                        let Some(text) = tail.get(..usize::from(len)) else {
                            break;
                        };
                        if let Ok(t) = std::str::from_utf8(text) {
                            answer.texts.push(t.to_owned());
                        }
                        rest = &tail[usize::from(len)..];
                    }
                }
                let len = usize::from(data[0]);
                if let Some(text) = data.get(1..1 + len) {
                    if let Some(site) = text.strip_prefix(b"site=") {
                        // A peer's word: only a name that could be a site's
                        // (it is shown, and names a site in the status).
                        answer.site = std::str::from_utf8(site)
                            .ok()
                            .filter(|s| is_site_name(s))
                            .map(str::to_owned);
                    }
                }
            }
            _ => {}
        }
        at = next;
    }
    Some(answer)
}
