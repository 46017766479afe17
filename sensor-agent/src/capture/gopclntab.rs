//! The function table Go keeps in every program (`.gopclntab`, what `runtime.FuncForPC` and
//! stack traces read), which `strip` and `-ldflags=-s -w` leave in place: function names and
//! address ranges for programs without a symbol table.
//!
//! **In:** the table's bytes, untrusted. **Out:** `(name, start, end)` per function. Only the
//! Go 1.18+ layout is read (header magic `0xfffffff0`, `0xfffffff1` since 1.20): earlier tables
//! share one magic between Go 1.16 (stack ABI) and 1.17 (register ABI), and the probes need to
//! know which calling convention they face. Every offset is checked; a bad table is an error,
//! never a panic or an unbounded walk (see the `gopclntab` fuzz target).
//!
//! Layout (Go's `runtime/symtab.go`, `pcHeader` and `_func`):
//! ```text
//! header  magic u32, pad u8 u8, minLC u8, ptrSize u8,
//!         nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset,
//!         pclnOffset                                     (each ptrSize bytes)
//! functab at pclnOffset: nfunc+1 pairs {entryOff u32, funcOff u32}, sorted by entryOff;
//!         the last entryOff is the end of the last function
//! _func   at pclnOffset + funcOff: entryOff u32, nameOff i32, ...
//! name    at funcnameOffset + nameOff, NUL-terminated
//! ```
use thiserror::Error;

const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;
/// Go 1.16 and 1.17.
const MAGIC_GO116: u32 = 0xffff_fffa;
/// Function names longer than this are not Go's (and are not what we look for).
const MAX_NAME: usize = 4096;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PclntabError {
    #[error("table shorter than its header")]
    Truncated,
    #[error("function table of Go 1.16/1.17, whose calling convention cannot be told apart")]
    TooOld,
    #[error("unknown function table magic {0:#x}")]
    Magic(u32),
    #[error("unsupported pointer size {0}")]
    PointerSize(u8),
    #[error("offset outside the table")]
    OutOfBounds,
}

/// A parsed table header; [`Table::functions`] walks the functions.
#[derive(Debug)]
pub struct Table<'a> {
    data: &'a [u8],
    nfunc: usize,
    text_start: u64,
    funcnames: usize,
    pcln: usize,
}

/// One function: its name and `[start, end)` virtual addresses (end includes the padding up to
/// the next function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Func<'a> {
    pub name: &'a [u8],
    pub start: u64,
    pub end: u64,
}

impl<'a> Table<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Table<'a>, PclntabError> {
        let magic = u32_at(data, 0).ok_or(PclntabError::Truncated)?;
        match magic {
            MAGIC_GO118 | MAGIC_GO120 => {}
            MAGIC_GO116 => return Err(PclntabError::TooOld),
            m => return Err(PclntabError::Magic(m)),
        }
        let ptr_size = *data.get(7).ok_or(PclntabError::Truncated)?;
        let word = |i: usize| -> Result<u64, PclntabError> {
            let at = 8 + i * usize::from(ptr_size);
            match ptr_size {
                8 => u64_at(data, at),
                4 => u32_at(data, at).map(u64::from),
                _ => None,
            }
            .ok_or(PclntabError::Truncated)
        };
        if ptr_size != 8 && ptr_size != 4 {
            return Err(PclntabError::PointerSize(ptr_size));
        }
        let nfunc = index(word(0)?)?;
        let text_start = word(2)?;
        let funcnames = index(word(3)?)?;
        let pcln = index(word(7)?)?;
        // nfunc+1 functab pairs of 8 bytes must fit: this bounds every walk by the input size.
        let functab_end =
            nfunc.checked_add(1).and_then(|n| n.checked_mul(8)).and_then(|n| n.checked_add(pcln));
        if functab_end.is_none_or(|end| end > data.len()) {
            return Err(PclntabError::OutOfBounds);
        }
        Ok(Table { data, nfunc, text_start, funcnames, pcln })
    }

    /// Number of functions in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nfunc
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// The `i`th function, in address order.
    pub fn function(&self, i: usize) -> Result<Func<'a>, PclntabError> {
        if i >= self.nfunc {
            return Err(PclntabError::OutOfBounds);
        }
        let pair = self.pcln + i * 8;
        let entry = u32_at(self.data, pair).ok_or(PclntabError::OutOfBounds)?;
        let func_off = u32_at(self.data, pair + 4).ok_or(PclntabError::OutOfBounds)?;
        let next = u32_at(self.data, pair + 8).ok_or(PclntabError::OutOfBounds)?;
        let func = self.pcln.checked_add(index(u64::from(func_off))?).ok_or(PclntabError::OutOfBounds)?;
        let name_off = u32_at(self.data, func + 4).ok_or(PclntabError::OutOfBounds)?;
        let name_at =
            self.funcnames.checked_add(index(u64::from(name_off))?).ok_or(PclntabError::OutOfBounds)?;
        let tail = self.data.get(name_at..).ok_or(PclntabError::OutOfBounds)?;
        let tail = &tail[..tail.len().min(MAX_NAME)];
        let len = memchr::memchr(0, tail).ok_or(PclntabError::OutOfBounds)?;
        let start = self.text_start.checked_add(u64::from(entry)).ok_or(PclntabError::OutOfBounds)?;
        let end = self.text_start.checked_add(u64::from(next)).ok_or(PclntabError::OutOfBounds)?;
        if end < start {
            return Err(PclntabError::OutOfBounds);
        }
        Ok(Func { name: &tail[..len], start, end })
    }

    /// Every function; entries that do not resolve are skipped (one bad entry does not hide
    /// the rest).
    pub fn functions(&self) -> impl Iterator<Item = Func<'a>> + '_ {
        (0..self.nfunc).filter_map(|i| self.function(i).ok())
    }
}

fn index(v: u64) -> Result<usize, PclntabError> {
    usize::try_from(v).map_err(|_| PclntabError::OutOfBounds)
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-function table laid out like the linker's.
    fn table() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(MAGIC_GO118.to_le_bytes());
        t.extend([0, 0, 1, 8]);
        let names_at = 72u64;
        let names = b"main.a\0main.bb\0";
        let pcln = names_at + names.len() as u64 + 1;
        for w in [2u64, 0, 0x40_1000, names_at, 0, 0, 0, pcln] {
            t.extend(w.to_le_bytes());
        }
        t.extend(names);
        t.push(0);
        // functab: {0, 24}, {0x20, 32}, end 0x50; then two _func {entry, nameOff}.
        for w in [0u32, 24, 0x20, 32, 0x50, 0, 0, 0, 0x20, 7] {
            t.extend(w.to_le_bytes());
        }
        t
    }

    #[test]
    fn walks_a_synthetic_table() {
        let data = table();
        let t = Table::parse(&data).unwrap();
        let funcs: Vec<Func> = t.functions().collect();
        assert_eq!(
            funcs,
            [
                Func { name: b"main.a", start: 0x40_1000, end: 0x40_1020 },
                Func { name: b"main.bb", start: 0x40_1020, end: 0x40_1050 }
            ]
        );
    }

    #[test]
    fn rejects_bad_tables_without_panicking() {
        assert_eq!(Table::parse(&[]).unwrap_err(), PclntabError::Truncated);
        assert_eq!(Table::parse(&MAGIC_GO116.to_le_bytes()).unwrap_err(), PclntabError::TooOld);
        assert_eq!(Table::parse(&[1, 2, 3, 4]).unwrap_err(), PclntabError::Magic(0x0403_0201));
        let mut data = table();
        // nfunc far beyond the data.
        data[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Table::parse(&data).unwrap_err(), PclntabError::OutOfBounds);
        // Every truncation parses or fails cleanly.
        let data = table();
        for cut in 0..data.len() {
            if let Ok(t) = Table::parse(&data[..cut]) {
                let _ = t.functions().count();
            }
        }
    }
}
