//! Content-defined chunking: FastCDC-style normalized chunking over a gear
//! rolling hash whose table is secret per repository (so chunk boundaries,
//! and the sizes storage can see, do not reveal content to others).

use std::io::Read;

/// Chunk size parameters (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.min >= 64
            && self.min < self.avg
            && self.avg < self.max
            && self.avg.is_power_of_two()
            && self.max <= 64 << 20)
        {
            return Err(format!("chunker sizes {self:?} must satisfy 64 <= min < avg < max <= 64 MiB with avg a power of two"));
        }
        Ok(())
    }
}

/// Finds chunk boundaries.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    p: ChunkerParams,
    mask_small: u64,
    mask_large: u64,
}

fn top_bits(n: u32) -> u64 {
    if n == 0 {
        0
    } else {
        (!0u64) << (64 - n)
    }
}

impl Chunker {
    pub fn new(gear: [u64; 256], p: ChunkerParams) -> Chunker {
        let bits = p.avg.trailing_zeros();
        Chunker {
            gear: Box::new(gear),
            p,
            mask_small: top_bits(bits + 2),
            mask_large: top_bits(bits.saturating_sub(2)),
        }
    }

    pub fn params(&self) -> ChunkerParams {
        self.p
    }

    /// The length of the first chunk of `data`, where `eof` says whether
    /// more data follows. Without `eof`, `data` must hold at least `max` bytes
    /// (or the returned cut is at most `data.len()` and only valid at EOF).
    pub fn cut(&self, data: &[u8]) -> usize {
        let n = data.len();
        let min = self.p.min as usize;
        if n <= min {
            return n;
        }
        let normal = (self.p.avg as usize).min(n);
        let end = (self.p.max as usize).min(n);
        let mut h: u64 = 0;
        let mut i = min;
        let g = &*self.gear;
        while i < normal {
            h = (h << 1).wrapping_add(g[data[i] as usize]);
            if h & self.mask_small == 0 {
                return i + 1;
            }
            i += 1;
        }
        while i < end {
            h = (h << 1).wrapping_add(g[data[i] as usize]);
            if h & self.mask_large == 0 {
                return i + 1;
            }
            i += 1;
        }
        end
    }

    /// Splits everything `r` yields into chunks, calling `f` on each.
    /// Returns the number of bytes read.
    pub fn stream<R: Read, E: From<std::io::Error>>(
        &self,
        mut r: R,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let max = self.p.max as usize;
        // room for one maximal chunk plus a read's worth beyond it
        let cap = max + (1 << 20);
        // the buffer grows only as far as the input needs: small files stay small
        if buf.is_empty() {
            buf.resize(64 * 1024, 0);
        }
        let (mut start, mut end) = (0usize, 0usize);
        let mut eof = false;
        let mut total = 0u64;
        loop {
            // fill until at least max bytes are buffered, or EOF
            while !eof && end - start < max {
                if end == buf.len() {
                    if buf.len() < cap {
                        let n = (buf.len() * 4).min(cap);
                        buf.resize(n, 0);
                    } else {
                        buf.copy_within(start..end, 0);
                        end -= start;
                        start = 0;
                    }
                }
                match r.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(k) => {
                        end += k;
                        total += k as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if start == end {
                return Ok(total);
            }
            let n = self.cut(&buf[start..end]);
            f(&buf[start..start + n])?;
            start += n;
            if start == end && eof {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunker(seed: u8) -> Chunker {
        let mut gear = [0u64; 256];
        let mut x = 0x9E3779B97F4A7C15u64 ^ seed as u64;
        for g in gear.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *g = x;
        }
        Chunker::new(
            gear,
            ChunkerParams {
                min: 256,
                avg: 1024,
                max: 4096,
            },
        )
    }

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks(c: &Chunker, d: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        c.stream::<_, std::io::Error>(d, &mut buf, |ch| {
            out.push(ch.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    proptest! {
        #[test]
        fn chunks_reassemble_and_respect_bounds(n in 0usize..40000, seed in any::<u64>()) {
            let c = chunker(1);
            let d = data(n, seed);
            let ch = chunks(&c, &d);
            prop_assert_eq!(ch.concat(), d);
            for (i, x) in ch.iter().enumerate() {
                prop_assert!(x.len() <= 4096);
                if i + 1 < ch.len() { prop_assert!(x.len() > 256); }
            }
        }
    }

    #[test]
    fn boundaries_resynchronise_after_an_insert() {
        let c = chunker(1);
        let d = data(200_000, 7);
        let mut e = d.clone();
        e.splice(1000..1000, b"inserted bytes".iter().copied());
        let a: std::collections::HashSet<_> = chunks(&c, &d).into_iter().collect();
        let b = chunks(&c, &e);
        let shared = b.iter().filter(|x| a.contains(*x)).count();
        assert!(
            shared * 10 >= b.len() * 8,
            "{shared} of {} chunks shared",
            b.len()
        );
    }

    #[test]
    fn table_changes_boundaries() {
        let d = data(100_000, 3);
        assert_ne!(
            chunks(&chunker(1), &d)
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            chunks(&chunker(2), &d)
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>()
        );
    }
}
