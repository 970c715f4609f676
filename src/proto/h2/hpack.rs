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

/// Fields a list reserves room for before decoding at most (one per byte
/// of its block up to this).
const MAX_RESERVED_FIELDS: usize = 32;
/// Bytes a new list reserves at least: a block of one-byte references to
/// table entries decodes to far more than twice its size.
const MIN_LIST_BYTES: usize = 256;
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

/// A decoded header list: every name and value in one buffer, so that a
/// request's fields cost no allocation of their own (and none at all once
/// the connection recycles its lists, [`super::Connection::recycle`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    bytes: Vec<u8>,
    /// Each field's name end and value end in `bytes`; a field begins
    /// where the one before it ended.
    ends: Vec<(u32, u32)>,
}

/// One field of a [`Fields`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// Name, as sent.
    pub name: &'a [u8],
    /// Value, as sent.
    pub value: &'a [u8],
}

impl Fields {
    /// How many fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The names' and values' bytes, together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The fields, in order.
    pub fn iter(&self) -> FieldsIter<'_> {
        FieldsIter {
            bytes: &self.bytes,
            ends: self.ends.iter(),
            start: 0,
        }
    }

    /// Appends a field.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value);
        self.ends.push((name_end, self.bytes.len() as u32));
    }

    /// Empties it, keeping its allocation.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Heap bytes it holds.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    /// As owned fields (for tests and tools).
    pub fn to_vec(&self) -> Vec<Field> {
        self.iter().map(|f| Field::new(f.name, f.value)).collect()
    }

    /// Ends a field whose name and value were written to `bytes` from
    /// `start` on, the name `name_len` long.
    fn close(&mut self, start: usize, name_len: usize) {
        self.ends
            .push(((start + name_len) as u32, self.bytes.len() as u32));
    }
}

/// The fields of a [`Fields`] list, in order.
#[derive(Debug, Clone)]
pub struct FieldsIter<'a> {
    bytes: &'a [u8],
    ends: std::slice::Iter<'a, (u32, u32)>,
    start: usize,
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = FieldRef<'a>;

    fn next(&mut self) -> Option<FieldRef<'a>> {
        let &(name_end, value_end) = self.ends.next()?;
        let (name_end, value_end) = (name_end as usize, value_end as usize);
        let field = FieldRef {
            name: self.bytes.get(self.start..name_end)?,
            value: self.bytes.get(name_end..value_end)?,
        };
        self.start = value_end;
        Some(field)
    }
}

impl<'a> FromIterator<(&'a [u8], &'a [u8])> for Fields {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], &'a [u8])>>(iter: I) -> Fields {
        let mut f = Fields::default();
        for (n, v) in iter {
            f.push(n, v);
        }
        f
    }
}

impl From<&[Field]> for Fields {
    fn from(list: &[Field]) -> Fields {
        list.iter().map(|f| (&f.name[..], &f.value[..])).collect()
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
    pub fields: Fields,
    /// The list size (§4.1), counted to the end even when over (but for
    /// literals stepped over once over: their decoded size is unknown).
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

/// Steps over a string literal (§5.2) without decoding it.
fn skip_string(buf: &[u8], at: &mut usize) -> Result<(), DecodeError> {
    let len = integer(buf, at, 7)? as usize;
    let end = at.checked_add(len).ok_or(DecodeError::Truncated)?;
    if end > buf.len() {
        return Err(DecodeError::Truncated);
    }
    *at = end;
    Ok(())
}

/// Reads a string literal (§5.2), appending it to `out`.
fn string(buf: &[u8], at: &mut usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let huff = buf.get(*at).ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = integer(buf, at, 7)? as usize;
    let end = at.checked_add(len).ok_or(DecodeError::Truncated)?;
    let raw = buf.get(*at..end).ok_or(DecodeError::Truncated)?;
    *at = end;
    if huff {
        out.reserve(len * 8 / 5);
        huffman::decode(raw, out).map_err(DecodeError::Huffman)
    } else {
        out.extend_from_slice(raw);
        Ok(())
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
        self.decode_into(block, limits, Fields::default())
    }

    /// [`Decoder::decode`] into `fields` (emptied first), a list whose
    /// allocation is reused.
    pub fn decode_into(
        &mut self,
        block: &[u8],
        limits: ListLimits,
        mut fields: Fields,
    ) -> Result<Decoded, DecodeError> {
        fields.clear();
        // Decoded fields are seldom much longer than their block: one
        // allocation each, not a doubling per field.
        fields.bytes.reserve((block.len() * 2).max(MIN_LIST_BYTES));
        fields.ends.reserve(block.len().min(MAX_RESERVED_FIELDS));
        let mut out = Decoded {
            fields,
            ..Decoded::default()
        };
        let mut at = 0;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                // Indexed field (§6.1). Once the list is over a limit it
                // is only counted, never copied: a block of one-byte
                // references to a large entry must not cost a copy each.
                let i = integer(block, &mut at, 7)?;
                let (n, v) = self.lookup(i)?;
                if out.admit(n.len() + v.len(), limits) {
                    out.fields.push(n, v);
                }
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if out.count > 0 {
                    return Err(DecodeError::SizeUpdateNotAtStart);
                }
                let max = integer(block, &mut at, 5)? as usize;
                if max > self.allowed {
                    return Err(DecodeError::SizeUpdateTooLarge);
                }
                self.table.set_max(max);
            } else {
                // Literal: with incremental indexing (01, 6-bit index),
                // without indexing (0000) or never indexed (0001), 4-bit.
                let indexing = b & 0xc0 == 0x40;
                let idx = integer(block, &mut at, if indexing { 6 } else { 4 })?;
                if out.over.is_some() && !indexing {
                    // Over a limit already, and it changes no table: its
                    // strings are stepped over, not decoded or copied
                    // (nor added to the list size: theirs is unknown).
                    if idx == 0 {
                        skip_string(block, &mut at)?;
                    } else {
                        self.lookup(idx)?;
                    }
                    skip_string(block, &mut at)?;
                    out.count += 1;
                    continue;
                }
                // Name and value are decoded where the list keeps them.
                let start = out.fields.bytes.len();
                if idx == 0 {
                    string(block, &mut at, &mut out.fields.bytes)?;
                } else {
                    let name = self.lookup(idx)?.0;
                    out.fields.bytes.extend_from_slice(name);
                }
                let name_len = out.fields.bytes.len() - start;
                string(block, &mut at, &mut out.fields.bytes)?;
                let (name, value) = out.fields.bytes[start..].split_at(name_len);
                if indexing {
                    self.table.insert(Field::new(name, value));
                }
                if out.admit(out.fields.bytes.len() - start, limits) {
                    out.fields.close(start, name_len);
                }
            }
        }
        Ok(out)
    }
}

impl Decoded {
    /// Counts one more field of `len` name and value bytes against
    /// `limits`: whether the list keeps it. Once over a limit, the list is
    /// emptied (what a literal wrote into it too) and keeps nothing more.
    fn admit(&mut self, len: usize, limits: ListLimits) -> bool {
        self.count += 1;
        self.list_size = self.list_size.saturating_add(len + ENTRY_OVERHEAD);
        if self.over.is_none() {
            self.over = over(self, limits);
        }
        if self.over.is_some() {
            self.fields.clear();
        }
        self.over.is_none()
    }
}

/// The limit a list counted so far is over, if any.
fn over(out: &Decoded, limits: ListLimits) -> Option<Over> {
    if out.count > limits.max_fields {
        Some(Over::FieldCount)
    } else if out.list_size > limits.max_list_size {
        Some(Over::ListSize)
    } else {
        None
    }
}

/// The most bytes an integer takes: the prefix, then 7 bits a byte.
const MAX_INTEGER: usize = 1 + (usize::BITS as usize).div_ceil(7);

/// Appends an integer with an `n`-bit prefix, `flags` in the high bits.
/// (Inlined, and written with one append: every field of every response
/// has one or two, and a call and a capacity check per byte cost more
/// than the encoding.)
#[inline]
pub fn write_integer(out: &mut Vec<u8>, flags: u8, n: u8, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    let mut b = [0u8; MAX_INTEGER];
    b[0] = flags | max as u8;
    let mut rest = v - max;
    let mut i = 1;
    while rest >= 0x80 {
        b[i] = (rest as u8 & 0x7f) | 0x80;
        rest >>= 7;
        i += 1;
    }
    b[i] = rest as u8;
    out.extend_from_slice(&b[..=i]);
}

#[inline]
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    write_integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Appends one field: fully indexed when the static table has the exact
/// pair, else a literal without indexing, its name indexed when the static
/// table has the name. Raw strings: no Huffman, no dynamic table.
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    // Room for all of it at once: the appends below then never grow.
    out.reserve(1 + 2 * MAX_INTEGER + name.len() + value.len());
    let Some(first) = static_name(name) else {
        out.push(0);
        write_string(out, name);
        write_string(out, value);
        return;
    };
    // Entries of one name are adjacent.
    let whole = STATIC[first..]
        .iter()
        .take_while(|(n, _)| *n == name)
        .position(|&(_, v)| v == value);
    match whole {
        Some(k) => write_integer(out, 0x80, 7, first + k + 1),
        None => {
            write_integer(out, 0, 4, first + 1);
            write_string(out, value);
        }
    }
}

/// The index in [`STATIC`] (from 0) of the first entry named `name`: a
/// match the compiler turns into a switch on the length and a compare,
/// where a scan of the table cost a comparison per entry, twice for each
/// field of every response.
fn static_name(name: &[u8]) -> Option<usize> {
    Some(match name {
        b":authority" => 0,
        b":method" => 1,
        b":path" => 3,
        b":scheme" => 5,
        b":status" => 7,
        b"accept-charset" => 14,
        b"accept-encoding" => 15,
        b"accept-language" => 16,
        b"accept-ranges" => 17,
        b"accept" => 18,
        b"access-control-allow-origin" => 19,
        b"age" => 20,
        b"allow" => 21,
        b"authorization" => 22,
        b"cache-control" => 23,
        b"content-disposition" => 24,
        b"content-encoding" => 25,
        b"content-language" => 26,
        b"content-length" => 27,
        b"content-location" => 28,
        b"content-range" => 29,
        b"content-type" => 30,
        b"cookie" => 31,
        b"date" => 32,
        b"etag" => 33,
        b"expect" => 34,
        b"expires" => 35,
        b"from" => 36,
        b"host" => 37,
        b"if-match" => 38,
        b"if-modified-since" => 39,
        b"if-none-match" => 40,
        b"if-range" => 41,
        b"if-unmodified-since" => 42,
        b"last-modified" => 43,
        b"link" => 44,
        b"location" => 45,
        b"max-forwards" => 46,
        b"proxy-authenticate" => 47,
        b"proxy-authorization" => 48,
        b"range" => 49,
        b"referer" => 50,
        b"refresh" => 51,
        b"retry-after" => 52,
        b"server" => 53,
        b"set-cookie" => 54,
        b"strict-transport-security" => 55,
        b"transfer-encoding" => 56,
        b"user-agent" => 57,
        b"vary" => 58,
        b"via" => 59,
        b"www-authenticate" => 60,
        _ => return None,
    })
}

/// Appends a whole list.
pub fn encode<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    for (n, v) in fields {
        encode_field(out, n, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WIDE: ListLimits = ListLimits {
        max_list_size: usize::MAX,
        max_fields: usize::MAX,
    };

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pairs(d: &Decoded) -> Vec<(String, String)> {
        d.fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name).into_owned(),
                    String::from_utf8_lossy(f.value).into_owned(),
                )
            })
            .collect()
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rfc_c2_1_literal_with_indexing() {
        let mut d = Decoder::default();
        let r = d
            .decode(
                &hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"),
                WIDE,
            )
            .unwrap();
        assert_eq!(pairs(&r), p(&[("custom-key", "custom-header")]));
        assert_eq!(d.table_size(), 55);
    }

    #[test]
    fn rfc_c2_2_literal_without_indexing() {
        let mut d = Decoder::default();
        let r = d
            .decode(&hex("040c2f73616d706c652f70617468"), WIDE)
            .unwrap();
        assert_eq!(pairs(&r), p(&[(":path", "/sample/path")]));
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn rfc_c2_3_literal_never_indexed() {
        let mut d = Decoder::default();
        let r = d
            .decode(&hex("100870617373776f726406736563726574"), WIDE)
            .unwrap();
        assert_eq!(pairs(&r), p(&[("password", "secret")]));
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn rfc_c2_4_indexed() {
        let mut d = Decoder::default();
        let r = d.decode(&[0x82], WIDE).unwrap();
        assert_eq!(pairs(&r), p(&[(":method", "GET")]));
    }

    fn requests(wires: [&str; 3]) {
        let mut d = Decoder::default();
        let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
        let r = d.decode(&hex(wires[0]), WIDE).unwrap();
        let mut want = p(&base);
        want.push((":authority".into(), "www.example.com".into()));
        assert_eq!(pairs(&r), want);
        assert_eq!(d.table_size(), 57);
        let r = d.decode(&hex(wires[1]), WIDE).unwrap();
        want.push(("cache-control".into(), "no-cache".into()));
        assert_eq!(pairs(&r), want);
        assert_eq!(d.table_size(), 110);
        let r = d.decode(&hex(wires[2]), WIDE).unwrap();
        let want = p(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]);
        assert_eq!(pairs(&r), want);
        assert_eq!(d.table_size(), 164);
    }

    #[test]
    fn rfc_c3_requests_without_huffman() {
        requests([
            "828684410f7777772e6578616d706c652e636f6d",
            "828684be58086e6f2d6361636865",
            "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        ]);
    }

    #[test]
    fn rfc_c4_requests_with_huffman() {
        requests([
            "828684418cf1e3c2e5f23a6ba0ab90f4ff",
            "828684be5886a8eb10649cbf",
            "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        ]);
    }

    #[test]
    fn one_byte_inputs_never_panic() {
        // Only the 61 static indexes and the 31 one-byte size updates are
        // whole blocks; everything else is refused, never a panic.
        let ok: Vec<u8> = (0..=255u8)
            .filter(|&b| Decoder::default().decode(&[b], WIDE).is_ok())
            .collect();
        let want: Vec<u8> = (0x20..=0x3e).chain(0x81..=0xbd).collect();
        assert_eq!(ok, want);
    }

    #[test]
    fn index_zero_and_past_the_table_are_refused() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(&[0x80], WIDE), Err(DecodeError::BadIndex));
        assert_eq!(d.decode(&[0x80 | 62], WIDE), Err(DecodeError::BadIndex));
        assert_eq!(d.decode(&[0x40 | 62, 0], WIDE), Err(DecodeError::BadIndex));
    }

    #[test]
    fn truncated_blocks_are_refused() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&[0x40, 0x05, b'a'], WIDE),
            Err(DecodeError::Truncated)
        );
        assert_eq!(d.decode(&[0xff], WIDE), Err(DecodeError::Truncated));
        assert_eq!(d.decode(&[0x04], WIDE), Err(DecodeError::Truncated));
    }

    #[test]
    fn huge_integers_are_refused() {
        let mut d = Decoder::default();
        let r = d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], WIDE);
        assert_eq!(r, Err(DecodeError::IntegerOverflow));
        // 2^32 exactly: 127 + continuation bytes.
        let r = d.decode(&[0xff, 0x81, 0xff, 0xff, 0xff, 0x0f], WIDE);
        assert_eq!(r, Err(DecodeError::IntegerOverflow));
    }

    #[test]
    fn integers_round_trip() {
        for v in [0, 1, 30, 31, 126, 127, 128, 1337, 65_535, u32::MAX as usize] {
            for n in [4u8, 5, 6, 7] {
                let mut out = Vec::new();
                write_integer(&mut out, 0, n, v);
                let mut at = 0;
                assert_eq!(integer(&out, &mut at, n).unwrap() as usize, v);
                assert_eq!(at, out.len());
            }
        }
    }

    #[test]
    fn integers_encode_as_rfc_c1_says_and_fit_their_room() {
        let mut out = vec![0xaa];
        write_integer(&mut out, 0xe0, 5, 10);
        write_integer(&mut out, 0xe0, 5, 1337);
        write_integer(&mut out, 0, 8, 42);
        assert_eq!(out, [0xaa, 0xea, 0xff, 0x9a, 0x0a, 42]);
        let mut out = Vec::new();
        write_integer(&mut out, 0, 1, usize::MAX);
        assert_eq!(out.len(), MAX_INTEGER);
        // Past what the decoder takes, but well formed: the prefix full,
        // then continuation bytes, the last without its high bit.
        assert_eq!(out[0], 1);
        assert!(out[1..MAX_INTEGER - 1].iter().all(|&b| b & 0x80 != 0));
        assert_eq!(out[MAX_INTEGER - 1] & 0x80, 0);
    }

    #[test]
    fn the_rfc_c1_integer_examples_decode() {
        let mut at = 0;
        assert_eq!(integer(&[0x0a], &mut at, 5).unwrap(), 10);
        let mut at = 0;
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], &mut at, 5).unwrap(), 1337);
        let mut at = 0;
        assert_eq!(integer(&[0x2a], &mut at, 7).unwrap(), 42);
    }

    #[test]
    fn size_updates_only_at_the_start() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&[0x82, 0x20], WIDE),
            Err(DecodeError::SizeUpdateNotAtStart)
        );
        let mut d = Decoder::default();
        // Two at the start are allowed (§4.2).
        let r = d.decode(&[0x20, 0x3f, 0x01, 0x82], WIDE).unwrap();
        assert_eq!(r.count, 1);
        assert_eq!(d.table_max(), 32);
    }

    #[test]
    fn size_updates_above_our_setting_are_refused() {
        let mut d = Decoder::new(100);
        let mut b = Vec::new();
        write_integer(&mut b, 0x20, 5, 101);
        assert_eq!(d.decode(&b, WIDE), Err(DecodeError::SizeUpdateTooLarge));
        let mut b = Vec::new();
        write_integer(&mut b, 0x20, 5, 100);
        d.decode(&b, WIDE).unwrap();
    }

    #[test]
    fn a_smaller_table_evicts_the_oldest_entries() {
        let mut d = Decoder::default();
        let mut b = Vec::new();
        for v in ["a", "b", "c"] {
            b.push(0x40);
            write_string(&mut b, b"k");
            write_string(&mut b, v.as_bytes());
        }
        d.decode(&b, WIDE).unwrap();
        assert_eq!(d.table_size(), 3 * 34);
        // Room for two entries: "a" (the oldest) goes.
        let mut b = Vec::new();
        write_integer(&mut b, 0x20, 5, 68);
        b.push(0x80 | 63);
        let r = d.decode(&b, WIDE).unwrap();
        assert_eq!(pairs(&r), p(&[("k", "b")]));
        assert_eq!(d.table_size(), 68);
    }

    #[test]
    fn an_entry_larger_than_the_table_empties_it() {
        let mut d = Decoder::new(40);
        let mut b = vec![0x40];
        write_string(&mut b, b"k");
        write_string(&mut b, b"v");
        b.push(0x40);
        write_string(&mut b, b"key");
        write_string(&mut b, b"a-value-too-long");
        let r = d.decode(&b, WIDE).unwrap();
        assert_eq!(r.count, 2);
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn lists_over_the_size_limit_are_decoded_and_marked() {
        let mut d = Decoder::default();
        let mut b = Vec::new();
        encode(&mut b, [(&b"a"[..], &b"1"[..]), (b"b", b"2")]);
        let limits = ListLimits {
            max_list_size: 60,
            max_fields: 100,
        };
        let r = d.decode(&b, limits).unwrap();
        assert_eq!(r.over, Some(Over::ListSize));
        assert!(r.fields.is_empty());
        assert_eq!(r.list_size, 68);
        assert_eq!(r.count, 2);
    }

    #[test]
    fn lists_over_the_field_count_are_marked() {
        let mut d = Decoder::default();
        let b = vec![0x82; 101];
        let r = d
            .decode(
                &b,
                ListLimits {
                    max_list_size: usize::MAX,
                    max_fields: 100,
                },
            )
            .unwrap();
        assert_eq!(r.over, Some(Over::FieldCount));
        let r = d
            .decode(
                &b[..100],
                ListLimits {
                    max_list_size: usize::MAX,
                    max_fields: 100,
                },
            )
            .unwrap();
        assert_eq!((r.over, r.fields.len()), (None, 100));
    }

    #[test]
    fn an_over_list_still_updates_the_table() {
        let mut d = Decoder::default();
        let mut b = vec![0x40];
        write_string(&mut b, b"big");
        write_string(&mut b, &[b'x'; 100]);
        let tight = ListLimits {
            max_list_size: 10,
            max_fields: 100,
        };
        assert!(d.decode(&b, tight).unwrap().over.is_some());
        // The next block refers to the entry the refused one added.
        let r = d.decode(&[0x80 | 62], WIDE).unwrap();
        assert_eq!(r.fields.iter().next().unwrap().name, b"big");
    }

    #[test]
    fn static_names_are_found_at_their_first_entry() {
        for (i, (name, _)) in STATIC.iter().enumerate() {
            let first = STATIC.iter().position(|(n, _)| n == name).unwrap();
            assert_eq!(static_name(name), Some(first), "entry {}", i + 1);
        }
        for other in [
            &b""[..],
            b":Status",
            b"x-custom",
            b"content-lengths",
            b"dat",
        ] {
            assert_eq!(static_name(other), None);
        }
    }

    proptest! {
        /// The encoder's choice is the one a scan of the table makes.
        #[test]
        fn encoding_matches_a_scan_of_the_table(
            i in 0..STATIC.len(),
            value in proptest::option::of("[a-z0-9/ ,]{0,12}"),
        ) {
            let (name, v) = STATIC[i];
            let value = value.map_or(v.to_vec(), String::into_bytes);
            let mut out = Vec::new();
            encode_field(&mut out, name, &value);
            let mut want = Vec::new();
            match STATIC.iter().position(|&(n, v)| n == name && v == &value[..]) {
                Some(k) => write_integer(&mut want, 0x80, 7, k + 1),
                None => {
                    let k = STATIC.iter().position(|&(n, _)| n == name).unwrap();
                    write_integer(&mut want, 0, 4, k + 1);
                    write_string(&mut want, &value);
                }
            }
            prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn the_encoder_uses_the_static_table() {
        let mut b = Vec::new();
        encode_field(&mut b, b":status", b"200");
        assert_eq!(b, [0x88]);
        let mut b = Vec::new();
        encode_field(&mut b, b":status", b"302");
        assert_eq!(b, [0x08, 3, b'3', b'0', b'2']);
        let mut b = Vec::new();
        encode_field(&mut b, b"x-a", b"b");
        assert_eq!(b, [0x00, 3, b'x', b'-', b'a', 1, b'b']);
    }

    #[test]
    fn the_encoder_never_touches_the_decoders_table() {
        let mut b = Vec::new();
        encode(&mut b, STATIC.iter().map(|&(n, v)| (n, v)));
        encode_field(&mut b, b"x-custom", &[b'v'; 300]);
        let mut d = Decoder::default();
        let r = d.decode(&b, WIDE).unwrap();
        assert_eq!(r.count, 62);
        assert_eq!(d.table_size(), 0);
    }

    fn story(dir: &str) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/proto/h2/testdata/hpack-test-case")
            .join(dir);
        let mut n = 0;
        for e in std::fs::read_dir(&root).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let cases = json["cases"].as_array().unwrap();
            let allowed = cases
                .iter()
                .filter_map(|c| c["header_table_size"].as_u64())
                .max()
                .unwrap_or(4096)
                .max(4096) as usize;
            let mut d = Decoder::new(allowed);
            for c in cases {
                let wire = hex(c["wire"].as_str().unwrap());
                let r = d.decode(&wire, WIDE).unwrap();
                let want: Vec<(String, String)> = c["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|h| h.as_object().unwrap().iter())
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                assert_eq!(pairs(&r), want, "{dir} seqno {}", c["seqno"]);
                // Our encoder's block decodes to the same list.
                let mut ours = Vec::new();
                encode(&mut ours, r.fields.iter().map(|f| (f.name, f.value)));
                let again = Decoder::default().decode(&ours, WIDE).unwrap();
                assert_eq!(again.fields, r.fields);
                n += 1;
            }
        }
        assert!(n > 10, "{dir}: only {n} cases");
    }

    #[test]
    fn corpus_nghttp2() {
        story("nghttp2");
    }

    #[test]
    fn corpus_nghttp2_change_table_size() {
        story("nghttp2-change-table-size");
    }

    #[test]
    fn corpus_nghttp2_16384_4096() {
        story("nghttp2-16384-4096");
    }

    #[test]
    fn corpus_go_hpack() {
        story("go-hpack");
    }

    #[test]
    fn corpus_python_hpack() {
        story("python-hpack");
    }

    #[test]
    fn corpus_haskell_linear_huffman() {
        story("haskell-http2-linear-huffman");
    }

    #[test]
    fn corpus_haskell_static() {
        story("haskell-http2-static");
    }

    #[test]
    fn corpus_node_http2_hpack() {
        story("node-http2-hpack");
    }

    proptest! {
        #[test]
        fn any_block_decodes_or_fails_cleanly(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::default();
            if let Ok(r) = d.decode(&b, ListLimits { max_list_size: 4096, max_fields: 100 }) {
                prop_assert!(r.fields.len() <= 100);
                prop_assert!(r.over.is_some() || r.list_size <= 4096);
            }
            prop_assert!(d.table_size() <= d.table_max());
        }

        #[test]
        fn encoded_lists_round_trip(list in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..200)), 0..20)) {
            let mut b = Vec::new();
            encode(&mut b, list.iter().map(|(n, v)| (&n[..], &v[..])));
            let r = Decoder::default().decode(&b, WIDE).unwrap();
            let got: Vec<_> = r.fields.to_vec().into_iter().map(|f| (f.name, f.value)).collect();
            prop_assert_eq!(got, list);
        }
    }
}
