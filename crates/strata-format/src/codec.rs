//! Little-endian cursor helpers shared by the binary encodings.

use crate::{FormatError, Id, Result};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.bytes(2)?.try_into().unwrap()))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().unwrap()))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    pub fn id(&mut self) -> Result<Id> {
        Ok(Id(self.bytes(32)?.try_into().unwrap()))
    }
    /// A count that will be followed by at least `min_each` bytes per item;
    /// rejects counts the remaining input cannot hold (no huge allocations).
    pub fn count(&mut self, n: usize, min_each: usize, field: &'static str) -> Result<usize> {
        if n.saturating_mul(min_each) > self.remaining() {
            return Err(FormatError::Invalid {
                what: self.what,
                field,
                detail: format!("count {n} exceeds the remaining {} bytes", self.remaining()),
            });
        }
        Ok(n)
    }
    pub fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(FormatError::Invalid {
                what: self.what,
                field: "length",
                detail: format!("{} trailing bytes", self.remaining()),
            });
        }
        Ok(())
    }
}

pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_i64(&mut self, v: i64);
    fn put_id(&mut self, v: &Id);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v)
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_id(&mut self, v: &Id) {
        self.extend_from_slice(&v.0)
    }
}

/// Splits `bytes` into its body and trailing 32-byte MAC and, with `keys`,
/// verifies the MAC; the body comes back for decoding either way (a keyless
/// reader still checks the structure).
pub fn mac_body<'a>(
    bytes: &'a [u8],
    keys: Option<&crate::Keys>,
    what: &'static str,
) -> Result<&'a [u8]> {
    if bytes.len() < 32 {
        return Err(crate::FormatError::Truncated {
            what,
            needed: 32 - bytes.len(),
        });
    }
    let (body, mac) = bytes.split_at(bytes.len() - 32);
    if let Some(k) = keys {
        k.verify_mac(body, mac, what)?;
    }
    Ok(body)
}
