//! A small streaming tar reader for archives that are untrusted and may be compressed: every
//! header is checksummed, every size is bounded before anything is allocated, and GNU long
//! names and pax records are capped (the `tar` crate reads those into memory whole, which a
//! compressed bomb could exploit). It reports entry types as they are; callers decide what to
//! refuse.

use std::io::Read;

use crate::error::{ErrorKind, Format, shown};

/// The longest GNU long name or link name accepted (Linux's PATH_MAX).
const MAX_LONG_NAME_BYTES: u64 = 4096;
/// The largest pax extended header accepted.
const MAX_PAX_BYTES: u64 = 64 * 1024;
/// Global pax headers carry comments (`git archive`); a stream of them is a bomb.
const MAX_GLOBAL_HEADERS: u32 = 16;

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TarKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    /// A character or block device or a FIFO.
    Special(&'static str),
    /// A type flag this reader does not know (sparse files, vendor extensions).
    Other(u8),
}

/// One entry's header, with long names and pax overrides applied.
#[derive(Debug)]
pub(crate) struct TarHeader {
    pub(crate) name: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) kind: TarKind,
}

pub(crate) struct TarReader<R> {
    inner: R,
    format: Format,
    /// Data bytes of the current entry not yet read.
    data_left: u64,
    /// Padding after the current entry's data.
    padding: u64,
    done: bool,
    globals: u32,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R, format: Format) -> Self {
        TarReader {
            inner,
            format,
            data_left: 0,
            padding: 0,
            done: false,
            globals: 0,
        }
    }

    /// The next entry, after skipping what is left of the current one; `None` at the end
    /// marker (or a clean end of stream on a block boundary).
    pub(crate) fn next_entry(&mut self) -> Result<Option<TarHeader>, ErrorKind> {
        if self.done {
            return Ok(None);
        }
        let skip = self.data_left + self.padding;
        self.discard(skip)?;
        self.data_left = 0;
        self.padding = 0;

        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut extension_seen = false;
        loop {
            let Some(block) = self.block()? else {
                if extension_seen {
                    return Err(self.malformed("the archive ends after an extension header"));
                }
                self.done = true;
                return Ok(None);
            };
            if block.iter().all(|&b| b == 0) {
                if extension_seen {
                    return Err(self.malformed("an extension header is followed by the end"));
                }
                self.done = true;
                return Ok(None);
            }
            self.check_sum(&block)?;
            let size = self.octal(&block[124..136], "size")?;
            let typeflag = block[156];
            match typeflag {
                b'L' | b'K' | b'x' => {
                    let (limit, what) = if typeflag == b'x' {
                        (MAX_PAX_BYTES, "pax extended header")
                    } else {
                        (MAX_LONG_NAME_BYTES, "GNU long name")
                    };
                    if size > limit {
                        return Err(ErrorKind::TooLarge {
                            format: self.format,
                            what,
                            limit,
                        });
                    }
                    let data = self.read_padded(size)?;
                    let repeated = match typeflag {
                        b'L' => long_name.replace(trim_nul(&data).to_vec()).is_some(),
                        // A long link name only matters for links, which are refused anyway.
                        b'K' => false,
                        _ => {
                            let (path, sz) = self.pax(&data)?;
                            let repeated = pax_path.is_some() || pax_size.is_some();
                            pax_path = path.or(pax_path);
                            pax_size = sz.or(pax_size);
                            repeated
                        }
                    };
                    if repeated {
                        return Err(
                            self.malformed("two extension headers of one kind for one entry")
                        );
                    }
                    extension_seen = true;
                }
                b'g' => {
                    self.globals += 1;
                    if self.globals > MAX_GLOBAL_HEADERS || size > MAX_PAX_BYTES {
                        return Err(ErrorKind::TooLarge {
                            format: self.format,
                            what: "pax global headers",
                            limit: MAX_PAX_BYTES,
                        });
                    }
                    self.read_padded(size)?;
                }
                _ => {
                    let mode = self.octal(&block[100..108], "mode")?;
                    let name = match (pax_path, long_name) {
                        (Some(path), _) => path,
                        (None, Some(long)) => long,
                        (None, None) => header_name(&block),
                    };
                    let kind = match typeflag {
                        0 | b'0' | b'7' => TarKind::File,
                        b'5' => TarKind::Dir,
                        b'1' => TarKind::Hardlink,
                        b'2' => TarKind::Symlink,
                        b'3' => TarKind::Special("a character device"),
                        b'4' => TarKind::Special("a block device"),
                        b'6' => TarKind::Special("a FIFO"),
                        other => TarKind::Other(other),
                    };
                    let size = pax_size.unwrap_or(size);
                    // Only regular files carry data; a link or directory with a size is odd,
                    // but its bytes are still in the stream and must be stepped over.
                    self.data_left = size;
                    self.padding = (512 - size % 512) % 512;
                    return Ok(Some(TarHeader {
                        name,
                        size,
                        mode: u32::try_from(mode & 0o7777).unwrap_or(0),
                        kind,
                    }));
                }
            }
        }
    }

    /// Reads the current entry's data (at most what remains of it).
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData { tar: self }
    }

    fn block(&mut self) -> Result<Option<[u8; 512]>, ErrorKind> {
        let mut block = [0u8; 512];
        let mut filled = 0;
        while filled < 512 {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        match filled {
            0 => Ok(None),
            512 => Ok(Some(block)),
            _ => Err(self.malformed("the archive ends inside a header")),
        }
    }

    fn read_padded(&mut self, size: u64) -> Result<Vec<u8>, ErrorKind> {
        let mut data = Vec::new();
        (&mut self.inner)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| self.read_error(e))?;
        if data.len() as u64 != size {
            return Err(self.malformed("the archive ends inside an extension header"));
        }
        self.discard((512 - size % 512) % 512)?;
        Ok(data)
    }

    fn discard(&mut self, len: u64) -> Result<(), ErrorKind> {
        let copied = std::io::copy(&mut (&mut self.inner).take(len), &mut std::io::sink())
            .map_err(|e| self.read_error(e))?;
        if copied != len {
            return Err(self.malformed("the archive ends inside an entry's data"));
        }
        Ok(())
    }

    fn check_sum(&self, block: &[u8; 512]) -> Result<(), ErrorKind> {
        let stored = self.octal(&block[148..156], "checksum")?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, &b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
            Ok(())
        } else {
            Err(self.malformed("a header's checksum does not match (not a tar archive?)"))
        }
    }

    /// An octal numeric field, or GNU's base-256 form (high bit set).
    fn octal(&self, field: &[u8], what: &str) -> Result<u64, ErrorKind> {
        if field.first().is_some_and(|b| b & 0x80 != 0) {
            let mut value: u64 = u64::from(field[0] & 0x7f);
            for &b in &field[1..] {
                value = value
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(u64::from(b)))
                    .ok_or_else(|| self.malformed(&format!("the {what} field overflows")))?;
            }
            return Ok(value);
        }
        let text = trim_nul(field);
        let text = std::str::from_utf8(text).unwrap_or("?");
        let text = text.trim_matches(' ');
        if text.is_empty() {
            return Ok(0);
        }
        u64::from_str_radix(text, 8).map_err(|_| {
            self.malformed(&format!("the {what} field {:?} is not octal", shown(text)))
        })
    }

    /// The `path` and `size` records of a pax header.
    fn pax(&self, data: &[u8]) -> Result<(Option<Vec<u8>>, Option<u64>), ErrorKind> {
        let mut rest = data;
        let mut path = None;
        let mut size = None;
        while !rest.is_empty() {
            let space = rest
                .iter()
                .position(|&b| b == b' ')
                .ok_or_else(|| self.malformed("a pax record has no length"))?;
            let len: usize = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&l| l > space + 1 && l <= rest.len())
                .ok_or_else(|| self.malformed("a pax record has an invalid length"))?;
            let record = &rest[space + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            let eq = record
                .iter()
                .position(|&b| b == b'=')
                .ok_or_else(|| self.malformed("a pax record has no '='"))?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => path = Some(value.to_vec()),
                b"size" => {
                    size = Some(
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                            .ok_or_else(|| self.malformed("a pax size record is not a number"))?,
                    );
                }
                _ => {}
            }
            rest = &rest[len..];
        }
        Ok((path, size))
    }

    fn malformed(&self, message: &str) -> ErrorKind {
        ErrorKind::Malformed {
            format: self.format,
            message: format!("tar: {message}"),
        }
    }

    fn read_error(&self, e: std::io::Error) -> ErrorKind {
        ErrorKind::Decompress {
            format: self.format,
            member: "tar stream".to_owned(),
            message: shown(&e.to_string()),
        }
    }
}

/// The data of the current entry.
pub(crate) struct EntryData<'a, R> {
    tar: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (buf.len() as u64).min(self.tar.data_left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.tar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry's data",
            ));
        }
        self.tar.data_left -= n as u64;
        Ok(n)
    }
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// The name field, with the POSIX ustar prefix when the header has one (GNU headers use those
/// bytes for other things).
fn header_name(block: &[u8; 512]) -> Vec<u8> {
    let name = trim_nul(&block[..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = trim_nul(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(name);
            return full;
        }
    }
    name.to_vec()
}
