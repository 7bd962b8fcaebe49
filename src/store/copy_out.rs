//! Postgres `COPY (SELECT …) TO STDOUT (FORMAT binary)`, read by hand: the fast way to stream
//! whole tables out. Owns the wire format only; never writes a statement (callers do, quoting
//! values with `literal`, as `COPY` takes no parameters).

use futures::TryStreamExt;
use sqlx::PgConnection;

/// Microseconds from the Unix epoch to Postgres' (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

fn malformed(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("binary COPY: {what}"))
}

/// `text` as an SQL string literal, as libpq's `PQescapeLiteral` writes it. For the statements
/// `COPY` cannot take parameters in.
pub(crate) fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    if text.contains('\\') {
        out.push_str(" E");
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// One row of binary COPY output: its fields are read in the order the statement selects them.
pub(crate) struct CopyRow<'a> {
    data: &'a [u8],
    fields_left: i16,
}

impl<'a> CopyRow<'a> {
    fn field(&mut self) -> Result<Option<&'a [u8]>, sqlx::Error> {
        if self.fields_left <= 0 {
            return Err(malformed("a row has fewer fields than the statement selects"));
        }
        self.fields_left -= 1;
        let (len, rest) = self.data.split_first_chunk::<4>().ok_or_else(|| malformed("truncated field"))?;
        let len = i32::from_be_bytes(*len);
        if len < 0 {
            self.data = rest;
            return Ok(None);
        }
        let (value, rest) = rest.split_at_checked(len as usize).ok_or_else(|| malformed("truncated field"))?;
        self.data = rest;
        Ok(Some(value))
    }

    /// A `bigint`, or `None` for NULL.
    pub(crate) fn opt_i64(&mut self) -> Result<Option<i64>, sqlx::Error> {
        match self.field()? {
            None => Ok(None),
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.try_into().map_err(|_| malformed("a bigint is not 8 bytes"))?;
                Ok(Some(i64::from_be_bytes(bytes)))
            }
        }
    }

    pub(crate) fn i64(&mut self) -> Result<i64, sqlx::Error> {
        self.opt_i64()?.ok_or_else(|| malformed("unexpected NULL"))
    }

    /// A `timestamptz` as microseconds since the Unix epoch, or `None` for NULL.
    pub(crate) fn opt_micros(&mut self) -> Result<Option<i64>, sqlx::Error> {
        Ok(self.opt_i64()?.map(|since_2000| since_2000.saturating_add(POSTGRES_EPOCH_MICROS)))
    }

    pub(crate) fn micros(&mut self) -> Result<i64, sqlx::Error> {
        self.opt_micros()?.ok_or_else(|| malformed("unexpected NULL"))
    }

    /// A `text`, borrowed from the row, or `None` for NULL.
    pub(crate) fn opt_text(&mut self) -> Result<Option<&'a str>, sqlx::Error> {
        match self.field()? {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes).map(Some).map_err(|_| malformed("text is not UTF-8")),
        }
    }

    pub(crate) fn text(&mut self) -> Result<&'a str, sqlx::Error> {
        self.opt_text()?.ok_or_else(|| malformed("unexpected NULL"))
    }
}

/// Where the next row of `data` ends: `Ok(None)` when `data` holds only part of it.
fn row_end(data: &[u8]) -> Result<Option<usize>, sqlx::Error> {
    let Some(count) = data.first_chunk::<2>() else { return Ok(None) };
    let count = i16::from_be_bytes(*count);
    let mut at = 2;
    for _ in 0..count.max(0) {
        let Some(len) = data.get(at..at + 4) else { return Ok(None) };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4 + len.max(0) as usize;
        if at > data.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

/// Where the reader stands in the stream.
enum Stage {
    Header,
    Rows,
    Done,
}

/// Splits the stream's chunks into rows, whatever the chunk boundaries (Postgres sends a row
/// per message, so rows are read in place and only a row cut in two is copied).
struct Rows {
    stage: Stage,
    pending: Vec<u8>,
}

impl Rows {
    /// Hands each complete row of `data` to `each`; returns how many bytes it used.
    fn take<F>(&mut self, data: &[u8], each: &mut F) -> Result<usize, sqlx::Error>
    where
        F: FnMut(CopyRow<'_>) -> Result<(), sqlx::Error>,
    {
        let mut at = 0;
        loop {
            let rest = &data[at..];
            match self.stage {
                Stage::Header => {
                    let Some(fixed) = rest.get(..SIGNATURE.len() + 8) else { return Ok(at) };
                    if &fixed[..SIGNATURE.len()] != SIGNATURE {
                        return Err(malformed("no PGCOPY signature"));
                    }
                    let extension = &fixed[SIGNATURE.len() + 4..];
                    let extension = u32::from_be_bytes([extension[0], extension[1], extension[2], extension[3]]);
                    let len = fixed.len() + extension as usize;
                    if rest.len() < len {
                        return Ok(at);
                    }
                    at += len;
                    self.stage = Stage::Rows;
                }
                Stage::Rows => {
                    let Some(count) = rest.first_chunk::<2>() else { return Ok(at) };
                    let count = i16::from_be_bytes(*count);
                    if count == -1 {
                        self.stage = Stage::Done;
                        return Ok(at + 2);
                    }
                    let Some(end) = row_end(rest)? else { return Ok(at) };
                    each(CopyRow { data: &rest[2..end], fields_left: count })?;
                    at += end;
                }
                Stage::Done => {
                    if rest.is_empty() {
                        return Ok(at);
                    }
                    return Err(malformed("data after the trailer"));
                }
            }
        }
    }

    fn chunk<F>(&mut self, chunk: &[u8], each: &mut F) -> Result<(), sqlx::Error>
    where
        F: FnMut(CopyRow<'_>) -> Result<(), sqlx::Error>,
    {
        if self.pending.is_empty() {
            let used = self.take(chunk, each)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let used = self.take(&pending, each)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }
}

/// Runs `COPY (statement) TO STDOUT (FORMAT binary)` and hands every row to `each`, in the
/// order Postgres sends them.
pub(crate) async fn copy_rows<F>(conn: &mut PgConnection, statement: &str, mut each: F) -> Result<(), sqlx::Error>
where
    F: FnMut(CopyRow<'_>) -> Result<(), sqlx::Error>,
{
    let sql = format!("COPY ({statement}) TO STDOUT (FORMAT binary)");
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut rows = Rows { stage: Stage::Header, pending: Vec::new() };
    let mut failed = None;
    while let Some(chunk) = stream.try_next().await? {
        // After an error, the rest of the stream is still read: the connection stays usable.
        if failed.is_none()
            && let Err(e) = rows.chunk(&chunk, &mut each)
        {
            failed = Some(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    match rows.stage {
        Stage::Done if rows.pending.is_empty() => Ok(()),
        _ => Err(malformed("the stream ended before its trailer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }

    /// A binary COPY stream of `(bigint, text, timestamptz)` rows, as Postgres writes it.
    fn stream(rows: &[(i64, Option<&str>, i64)]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&4u32.to_be_bytes());
        out.extend_from_slice(b"skip");
        for (id, text, at) in rows {
            out.extend_from_slice(&3i16.to_be_bytes());
            field(&mut out, Some(&id.to_be_bytes()));
            field(&mut out, text.map(str::as_bytes));
            field(&mut out, Some(&(at - POSTGRES_EPOCH_MICROS).to_be_bytes()));
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn read(chunks: &[&[u8]]) -> Result<Vec<(i64, Option<String>, i64)>, sqlx::Error> {
        let mut rows = Rows { stage: Stage::Header, pending: Vec::new() };
        let mut got = Vec::new();
        let mut each = |mut row: CopyRow<'_>| {
            got.push((row.i64()?, row.opt_text()?.map(String::from), row.micros()?));
            Ok(())
        };
        for chunk in chunks {
            rows.chunk(chunk, &mut each)?;
        }
        assert!(matches!(rows.stage, Stage::Done) && rows.pending.is_empty());
        Ok(got)
    }

    #[test]
    fn rows_are_read_whatever_the_chunk_boundaries() {
        let rows = [(1, Some("Dana"), 1_700_000_000_000_000), (-2, None, 0), (3, Some("Siobhán"), -5)];
        let expected: Vec<_> = rows.iter().map(|(i, t, a)| (*i, t.map(String::from), *a)).collect();
        let bytes = stream(&rows);
        assert_eq!(read(&[&bytes]).unwrap(), expected);
        for cut in 1..bytes.len() {
            assert_eq!(read(&[&bytes[..cut], &bytes[cut..]]).unwrap(), expected, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read(&bytewise).unwrap(), expected);
    }

    #[test]
    fn a_row_with_fewer_fields_than_read_is_an_error() {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&1i16.to_be_bytes());
        field(&mut bytes, Some(&7i64.to_be_bytes()));
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        assert!(read(&[&bytes]).is_err());
    }

    #[test]
    fn literals_are_quoted_as_libpq_quotes_them() {
        assert_eq!(literal("shop.myshopify.com"), "'shop.myshopify.com'");
        assert_eq!(literal("o'brien"), "'o''brien'");
        assert_eq!(literal(r"a\b'"), r" E'a\\b'''");
    }
}
