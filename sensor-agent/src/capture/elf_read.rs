//! ELF files read on demand with `pread`, never mapped.
//!
//! The files the agent inspects belong to other processes, some inside containers whose owners can
//! truncate them at any time: a truncated mapping faults (SIGBUS) on the next access and kills the
//! agent, where a read just fails. `object` parses from any [`ReadRef`]; this one reads 64 KiB
//! blocks as they are touched and keeps them until it is dropped, so memory grows with what the
//! parse looks at (symbol and string tables, a few sections), as a mapping's resident pages would,
//! and never with the size of the file.
use std::{cell::RefCell, collections::HashMap, fs::File, ops::Range, os::unix::fs::FileExt as _};

use object::ReadRef;

const BLOCK: u64 = 64 * 1024;
/// Longest string `read_bytes_at_until` looks for: far above any real symbol name (Rust's
/// mangled ones run to a few KiB), low enough that a malformed table cannot pull a whole file in.
const MAX_STRING: u64 = 1 << 20;

/// Owned byte buffers by key, handed out as slices for as long as the map lives.
type Buffers<K> = RefCell<HashMap<K, Box<[u8]>>>;

pub struct ElfRead<'f> {
    file: &'f File,
    len: u64,
    /// Whole blocks by index, and reads that span blocks by `(offset, size)`. Entries are never
    /// replaced or removed while `self` lives: slices handed out point into their boxes.
    blocks: Buffers<u64>,
    spans: Buffers<(u64, u64)>,
}

impl<'f> ElfRead<'f> {
    /// # Errors
    /// When the file's length cannot be read.
    pub fn new(file: &'f File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len, blocks: RefCell::default(), spans: RefCell::default() })
    }

    fn pread(&self, offset: u64, size: u64) -> Result<Box<[u8]>, ()> {
        let size = usize::try_from(size).map_err(|_| ())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(size).map_err(|_| ())?;
        buf.resize(size, 0);
        // A file shortened since `len` was read fails here, as it should.
        self.file.read_exact_at(&mut buf, offset).map_err(|_| ())?;
        Ok(buf.into_boxed_slice())
    }

    fn block(&self, index: u64) -> Result<&[u8], ()> {
        let mut blocks = self.blocks.borrow_mut();
        if let std::collections::hash_map::Entry::Vacant(slot) = blocks.entry(index) {
            let start = index * BLOCK;
            slot.insert(self.pread(start, BLOCK.min(self.len - start))?);
        }
        let block: &[u8] = blocks.get(&index).ok_or(())?;
        // SAFETY: the box is never removed or replaced while `self` lives, so its heap bytes stay
        // where they are even when the map itself reallocates.
        Ok(unsafe { std::slice::from_raw_parts(block.as_ptr(), block.len()) })
    }

    fn in_bounds(&self, range: &Range<u64>) -> bool {
        range.start <= range.end && range.end <= self.len
    }
}

impl<'a> ReadRef<'a> for &'a ElfRead<'_> {
    fn len(self) -> Result<u64, ()> {
        Ok(self.len)
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        let end = offset.checked_add(size).ok_or(())?;
        if size == 0 {
            return Ok(&[]);
        }
        if !self.in_bounds(&(offset..end)) {
            return Err(());
        }
        let index = offset / BLOCK;
        if (end - 1) / BLOCK == index {
            let at = usize::try_from(offset - index * BLOCK).map_err(|_| ())?;
            let size = usize::try_from(size).map_err(|_| ())?;
            return self.block(index)?.get(at..at + size).ok_or(());
        }
        let mut spans = self.spans.borrow_mut();
        if let std::collections::hash_map::Entry::Vacant(slot) = spans.entry((offset, size)) {
            slot.insert(self.pread(offset, size)?);
        }
        let span: &[u8] = spans.get(&(offset, size)).ok_or(())?;
        // SAFETY: as in `block`.
        Ok(unsafe { std::slice::from_raw_parts(span.as_ptr(), span.len()) })
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        if !self.in_bounds(&range) {
            return Err(());
        }
        // Block by block until the delimiter: a string inside one block is a slice of it; one
        // that crosses blocks is read whole once its length is known (rare: string tables are
        // read densely, so the blocks are already here).
        let limit = range.end.min(range.start.saturating_add(MAX_STRING));
        let mut at = range.start;
        while at < limit {
            let index = at / BLOCK;
            let block_end = ((index + 1) * BLOCK).min(limit);
            let part = self.read_bytes_at(at, block_end - at)?;
            if let Some(n) = memchr::memchr(delimiter, part) {
                let end = at + n as u64;
                return if at == range.start {
                    Ok(&part[..n])
                } else {
                    self.read_bytes_at(range.start, end - range.start)
                };
            }
            at = block_end;
        }
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSymbol as _};

    use super::*;

    /// A scratch file holding `data`, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str, data: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!("apisense-elf-read-{}-{name}", std::process::id()));
            std::fs::write(&path, data).unwrap();
            Self(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn names<'d, R: ReadRef<'d>>(elf: &object::File<'d, R>) -> Vec<String> {
        elf.symbols().filter_map(|s| s.name().ok().map(str::to_owned)).collect()
    }

    #[test]
    fn parses_a_real_binary_like_a_mapping_would() {
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = File::open(&path).unwrap();
        let read = ElfRead::new(&file).unwrap();
        let from_read = object::File::parse(&read).unwrap();
        let from_bytes = object::File::parse(&*bytes).unwrap();
        let (a, b) = (names(&from_read), names(&from_bytes));
        assert!(a.len() > 1000, "a test binary has thousands of symbols: {}", a.len());
        assert_eq!(a.len(), b.len());
        assert!(a == b, "first difference at {:?}", a.iter().zip(&b).position(|(x, y)| x != y));
    }

    #[test]
    fn reads_across_blocks_and_rejects_out_of_bounds() {
        let data: Vec<u8> =
            (0..3 * BLOCK).map(|i| if i % 1000 == 999 { 0 } else { b'a' + (i % 26) as u8 }).collect();
        let tmp = Scratch::new("blocks", &data);
        let file = File::open(&tmp.0).unwrap();
        let read = ElfRead::new(&file).unwrap();
        let r = &read;
        for (offset, size) in [(0, 10), (BLOCK - 5, 10), (BLOCK * 2 - 1, BLOCK + 1), (3 * BLOCK - 1, 1)] {
            let (o, s) = (offset as usize, size as usize);
            assert_eq!(r.read_bytes_at(offset, size).unwrap(), &data[o..o + s], "{offset}+{size}");
        }
        assert!(r.read_bytes_at(3 * BLOCK - 1, 2).is_err());
        assert!(r.read_bytes_at(u64::MAX, 2).is_err());
        // A string that crosses a block boundary: 65535 is not a delimiter position.
        let at = BLOCK - 3;
        let until = r.read_bytes_at_until(at..3 * BLOCK, 0).unwrap();
        let want_end = (at as usize..data.len()).find(|&i| data[i] == 0).unwrap();
        assert_eq!(until, &data[at as usize..want_end]);
    }

    #[test]
    fn a_file_truncated_after_opening_is_an_error_not_a_fault() {
        let tmp = Scratch::new("truncated", &vec![7u8; 4 * BLOCK as usize]);
        let file = File::open(&tmp.0).unwrap();
        let read = ElfRead::new(&file).unwrap();
        std::fs::OpenOptions::new().write(true).open(&tmp.0).unwrap().set_len(BLOCK).unwrap();
        assert!((&read).read_bytes_at(2 * BLOCK, 16).is_err());
        assert_eq!((&read).read_bytes_at(0, 4).unwrap(), &[7, 7, 7, 7]);
    }
}
