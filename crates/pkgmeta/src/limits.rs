//! Size limits and a bounds-checked cursor shared by the format readers, so that every length
//! read from a file is compared with the bytes actually present before it is used.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{ErrorKind, Format};

/// The most decompressed bytes read from a .deb `control.tar*` member. Real control archives
/// are a few KiB; anything this large is a decompression bomb or not a package.
pub const MAX_CONTROL_BYTES: usize = 1024 * 1024;

/// The most index entries in one RPM header (rpm itself caps at 65,535 tags).
pub const MAX_RPM_INDEX_ENTRIES: u32 = 65_535;

/// The most bytes of an RPM header data store (rpm itself caps at 256 MiB; real main headers
/// of very large packages stay in the tens of MiB because of the file lists).
pub const MAX_RPM_HEADER_BYTES: u32 = 64 * 1024 * 1024;

/// Where a package's bytes come from: a slice already in memory, or a seekable file that is
/// read only where the parser needs it (the headers, never the payload).
pub(crate) trait Input {
    /// The total length of the file.
    fn len(&self) -> u64;
    /// Fills `buf` from `offset`; the caller has checked the range against [`Input::len`].
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl Input for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A seekable reader, typically an uploaded blob on disk.
pub(crate) struct SeekInput<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek> SeekInput<R> {
    pub(crate) fn new(mut inner: R) -> std::io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        Ok(SeekInput { inner, len })
    }
}

impl<R: Read + Seek> Input for SeekInput<R> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.seek(SeekFrom::Start(offset))?;
        self.inner.read_exact(buf)
    }
}

/// A read position in an input whose every step is checked against the input's length before
/// anything is allocated or read.
pub(crate) struct Cursor<I> {
    input: I,
    pos: u64,
    format: Format,
}

impl<I: Input> Cursor<I> {
    pub(crate) fn new(input: I, format: Format) -> Self {
        Cursor {
            input,
            pos: 0,
            format,
        }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.input.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.remaining() == 0
    }

    fn check(&self, len: u64, what: &'static str) -> Result<(), ErrorKind> {
        if len > self.remaining() {
            return Err(ErrorKind::Truncated {
                format: self.format,
                what,
                offset: self.pos,
                needed: len,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    /// Reads `len` bytes, or reports which structure was cut short. Callers bound `len` by a
    /// limit of their own; the file length bounds it too.
    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<Vec<u8>, ErrorKind> {
        self.check(len as u64, what)?;
        let mut buf = vec![0; len];
        self.input
            .read_at(self.pos, &mut buf)
            .map_err(|e| ErrorKind::Io {
                message: format!("reading {what} at offset {}: {e}", self.pos),
            })?;
        self.pos += len as u64;
        Ok(buf)
    }

    /// Steps over `len` bytes without reading them (a payload), checking they are present.
    pub(crate) fn skip(&mut self, len: u64, what: &'static str) -> Result<(), ErrorKind> {
        self.check(len, what)?;
        self.pos += len;
        Ok(())
    }

    pub(crate) fn u32_be(&mut self, what: &'static str) -> Result<u32, ErrorKind> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// An [`Input`] as a `Read + Seek` stream, for decoders that want one (zip, gzip, the MSI
/// reader). Reads past the end return 0 bytes, as a file does.
pub(crate) struct InputReader<I> {
    input: I,
    pos: u64,
}

impl<I: Input> InputReader<I> {
    pub(crate) fn new(input: I) -> Self {
        InputReader { input, pos: 0 }
    }
}

impl<I: Input> Read for InputReader<I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.input.len().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.input.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<I: Input> Seek for InputReader<I> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.input.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        self.pos = target;
        Ok(target)
    }
}

impl<I: Input> Input for &mut I {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (**self).read_at(offset, buf)
    }
}
