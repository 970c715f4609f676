//! HPACK (RFC 7541): our own decoder, with the limits inside it, and a
//! small encoder (static table and literals only, so we never hold a
//! dynamic table for the peer and never send a table-size update).
//!
//! The decoder must see every block of a connection, refused or not, or
//! its dynamic table drifts from the client's; so a list over our limits
//! is decoded to the end, its fields dropped, and reported as
//! [`Decoded::over`], while a block that breaks HPACK itself is a
//! connection error (COMPRESSION_ERROR). Huffman strings are decoded by
//! [`super::huffman`].

use std::collections::VecDeque;

use super::huffman::{self, HuffmanError};

/// The per-field overhead of RFC 7541 §4.1 (and SETTINGS_MAX_HEADER_LIST_SIZE).
pub const ENTRY_OVERHEAD: usize = 32;
/// SETTINGS_HEADER_TABLE_SIZE's initial value; we never announce another.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The static table (RFC 7541 Appendix A), index 1 first.
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// One decoded field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Name, as sent (validated by [`super::to_h1`], not here).
    pub name: Vec<u8>,
    /// Value, as sent.
    pub value: Vec<u8>,
}

impl Field {
    /// A field from two byte strings.
    pub fn new(name: &[u8], value: &[u8]) -> Field {
        Field {
            name: name.to_vec(),
            value: value.to_vec(),
        }
    }

    /// Its size as RFC 7541 §4.1 counts it.
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// Why a block breaks HPACK: always a connection error, COMPRESSION_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer over 2^32 − 1 or with too many continuation bytes.
    IntegerOverflow,
    /// An index that is 0 or past the dynamic table.
    BadIndex,
    /// A dynamic table size update after the first field (§4.2).
    SizeUpdateNotAtStart,
    /// A size update larger than SETTINGS_HEADER_TABLE_SIZE (§6.3).
    SizeUpdateTooLarge,
    /// A Huffman string that is not valid.
    Huffman(HuffmanError),
}

impl DecodeError {
    /// The reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::Truncated => "HPACK block ends inside a field",
            DecodeError::IntegerOverflow => "HPACK integer too large",
            DecodeError::BadIndex => "HPACK index out of range",
            DecodeError::SizeUpdateNotAtStart => "HPACK table size update after a field",
            DecodeError::SizeUpdateTooLarge => "HPACK table size update above our setting",
            DecodeError::Huffman(_) => "invalid HPACK Huffman string",
        }
    }
}

/// Which limit a header list went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// name + value + 32 summed over the fields, past the list size.
    ListSize,
    /// More fields than allowed.
    FieldCount,
}

/// The limits a decoded list is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// Largest list size (SETTINGS_MAX_HEADER_LIST_SIZE we announce).
    pub max_list_size: usize,
    /// Most fields (100, as for HTTP/1).
    pub max_fields: usize,
}

/// A decoded block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The fields, in order; empty when `over` is set.
    pub fields: Vec<Field>,
    /// The list size (§4.1), counted to the end even when over.
    pub list_size: usize,
    /// Fields seen, counted to the end even when over.
    pub count: usize,
    /// The limit the list went over, if any.
    pub over: Option<Over>,
}

/// The dynamic table (§2.3.2), newest entry first.
#[derive(Debug, Default)]
struct DynamicTable {
    entries: VecDeque<Field>,
    size: usize,
    max: usize,
}

impl DynamicTable {
    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size(),
                None => break,
            }
        }
    }

    fn insert(&mut self, f: Field) {
        let s = f.size();
        if s > self.max {
            // §4.4: an entry larger than the table empties it.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max - s);
        self.size += s;
        self.entries.push_front(f);
    }

    fn set_max(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
    }
}

/// A connection's HPACK decoder.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// SETTINGS_HEADER_TABLE_SIZE we announced: no update may go above.
    allowed: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_TABLE_SIZE)
    }
}

/// Reads an integer with an `n`-bit prefix (§5.1) from `buf[*at..]`.
fn integer(buf: &[u8], at: &mut usize, n: u8) -> Result<u32, DecodeError> {
    let first = *buf.get(*at).ok_or(DecodeError::Truncated)?;
    *at += 1;
    let mask = ((1u16 << n) - 1) as u8;
    let mut v = u64::from(first & mask);
    if v < u64::from(mask) {
        return Ok(v as u32);
    }
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*at).ok_or(DecodeError::Truncated)?;
        *at += 1;
        v += u64::from(b & 0x7f) << shift;
        if v > u64::from(u32::MAX) {
            return Err(DecodeError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(v as u32);
        }
        shift += 7;
        if shift > 28 {
            return Err(DecodeError::IntegerOverflow);
        }
    }
}

/// Reads a string literal (§5.2).
fn string(buf: &[u8], at: &mut usize) -> Result<Vec<u8>, DecodeError> {
    let huff = buf.get(*at).ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = integer(buf, at, 7)? as usize;
    let end = at.checked_add(len).ok_or(DecodeError::Truncated)?;
    let raw = buf.get(*at..end).ok_or(DecodeError::Truncated)?;
    *at = end;
    if huff {
        let mut out = Vec::with_capacity(len * 8 / 5);
        huffman::decode(raw, &mut out).map_err(DecodeError::Huffman)?;
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

impl Decoder {
    /// A decoder for a connection where we announced `allowed` as
    /// SETTINGS_HEADER_TABLE_SIZE (4096 unless we sent another).
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: DynamicTable {
                max: allowed,
                ..DynamicTable::default()
            },
            allowed,
        }
    }

    /// The dynamic table's current size (§4.1).
    pub fn table_size(&self) -> usize {
        self.table.size
    }

    /// The dynamic table's current maximum.
    pub fn table_max(&self) -> usize {
        self.table.max
    }

    fn lookup(&self, index: u32) -> Result<(&[u8], &[u8]), DecodeError> {
        let i = index as usize;
        if i == 0 {
            return Err(DecodeError::BadIndex);
        }
        if let Some((n, v)) = STATIC.get(i - 1) {
            return Ok((n, v));
        }
        let e = self
            .table
            .entries
            .get(i - 1 - STATIC.len())
            .ok_or(DecodeError::BadIndex)?;
        Ok((&e.name, &e.value))
    }

    /// Decodes one complete header block, holding the list to `limits`.
    pub fn decode(&mut self, block: &[u8], limits: ListLimits) -> Result<Decoded, DecodeError> {
        let mut out = Decoded::default();
        let mut at = 0;
        let mut fields_started = false;
        while at < block.len() {
            let b = block[at];
            let field = if b & 0x80 != 0 {
                // Indexed field (§6.1).
                let i = integer(block, &mut at, 7)?;
                let (n, v) = self.lookup(i)?;
                Field::new(n, v)
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if fields_started {
                    return Err(DecodeError::SizeUpdateNotAtStart);
                }
                let max = integer(block, &mut at, 5)? as usize;
                if max > self.allowed {
                    return Err(DecodeError::SizeUpdateTooLarge);
                }
                self.table.set_max(max);
                continue;
            } else {
                // Literal: with incremental indexing (01, 6-bit index),
                // without indexing (0000) or never indexed (0001), 4-bit.
                let indexing = b & 0xc0 == 0x40;
                let idx = integer(block, &mut at, if indexing { 6 } else { 4 })?;
                let name = if idx == 0 {
                    string(block, &mut at)?
                } else {
                    self.lookup(idx)?.0.to_vec()
                };
                let value = string(block, &mut at)?;
                let f = Field { name, value };
                if indexing {
                    self.table.insert(f.clone());
                }
                f
            };
            fields_started = true;
            out.count += 1;
            out.list_size = out.list_size.saturating_add(field.size());
            if out.over.is_none() {
                if out.count > limits.max_fields {
                    out.over = Some(Over::FieldCount);
                } else if out.list_size > limits.max_list_size {
                    out.over = Some(Over::ListSize);
                }
                if out.over.is_some() {
                    out.fields = Vec::new();
                } else {
                    out.fields.push(field);
                }
            }
        }
        Ok(out)
    }
}

/// Appends an integer with an `n`-bit prefix, `flags` in the high bits.
pub fn write_integer(out: &mut Vec<u8>, flags: u8, n: u8, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = v - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    write_integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Appends one field: fully indexed when the static table has the exact
/// pair, else a literal without indexing, its name indexed when the static
/// table has the name. Raw strings: no Huffman, no dynamic table.
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if let Some(i) = STATIC.iter().position(|&(n, v)| n == name && v == value) {
        write_integer(out, 0x80, 7, i + 1);
        return;
    }
    match STATIC.iter().position(|&(n, _)| n == name) {
        Some(i) => write_integer(out, 0, 4, i + 1),
        None => {
            out.push(0);
            write_string(out, name);
        }
    }
    write_string(out, value);
}

/// Appends a whole list.
pub fn encode<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    for (n, v) in fields {
        encode_field(out, n, v);
    }
}
