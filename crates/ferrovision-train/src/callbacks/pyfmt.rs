//! Python `str.format` templates (`ModelCheckpoint` file names such as
//! `ckpt-{epoch:02d}-{val_loss:.4f}`); the numbers are formatted by `ferrovision_io::pyfmt`
//! (also `repr(float)` for the CSV values, like Keras' `CSVLogger`).

use super::Logs;
use crate::{Error, Result};
pub use ferrovision_io::pyfmt::py_float_repr;
use ferrovision_io::pyfmt::{py_fixed, py_sci};

/// A value a template field can format.
#[derive(Clone, Copy)]
enum Arg {
    Int(i64),
    Float(f64),
}

/// A parsed format spec `[sign][0][width][.precision][type]` (the subset file names need).
struct Spec {
    plus: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    kind: Option<char>,
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let mut s = spec;
    let plus = s.starts_with('+');
    if plus {
        s = &s[1..];
    }
    let zero = s.starts_with('0');
    if zero {
        s = &s[1..];
    }
    let wlen = s.bytes().take_while(u8::is_ascii_digit).count();
    let width = if wlen > 0 { s[..wlen].parse().ok()? } else { 0 };
    s = &s[wlen..];
    let mut precision = None;
    if let Some(rest) = s.strip_prefix('.') {
        let plen = rest.bytes().take_while(u8::is_ascii_digit).count();
        if plen == 0 {
            return None;
        }
        precision = Some(rest[..plen].parse().ok()?);
        s = &rest[plen..];
    }
    let kind = match s {
        "" => None,
        "d" | "f" | "F" | "e" | "E" | "%" => s.chars().next(),
        _ => return None,
    };
    Some(Spec {
        plus,
        zero,
        width,
        precision,
        kind,
    })
}

fn format_arg(name: &str, arg: Arg, spec_text: &str, template: &str) -> Result<String> {
    let spec = parse_spec(spec_text).ok_or_else(|| {
        Error::config(format!(
            "file name template '{template}': unsupported format spec '{spec_text}' for \
             '{name}' (supported: [+][0][width][.precision][d|f|e|E|%])"
        ))
    })?;
    let body = match (spec.kind, arg) {
        (None, Arg::Int(i)) if spec.precision.is_none() => i.to_string(),
        (Some('d'), Arg::Int(i)) if spec.precision.is_none() => i.to_string(),
        (None, Arg::Float(f)) if spec.precision.is_none() => py_float_repr(f),
        (Some(k @ ('f' | 'F' | 'e' | 'E' | '%')), a) => {
            let v = match a {
                Arg::Int(i) => i as f64,
                Arg::Float(f) => f,
            };
            let p = spec.precision.unwrap_or(6);
            match k {
                'e' | 'E' if v.is_finite() => py_sci(v, p, k == 'E'),
                '%' if v.is_finite() => format!("{}%", py_fixed(v * 100.0, p)),
                _ if v.is_nan() => "nan".into(),
                _ if v.is_infinite() => if v > 0.0 { "inf" } else { "-inf" }.into(),
                _ => py_fixed(v, p),
            }
        }
        (Some('d'), Arg::Float(_)) => {
            return Err(Error::config(format!(
                "file name template '{template}': '{name}' is a float, format code 'd' needs \
                 an integer (use .Nf or .Ne)"
            )))
        }
        _ => {
            return Err(Error::config(format!(
                "file name template '{template}': format spec '{spec_text}' does not apply to \
                 '{name}'"
            )))
        }
    };
    let (sign, digits) = match body.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None if spec.plus => ("+", body.clone()),
        None => ("", body.clone()),
    };
    let len = sign.len() + digits.len();
    if len >= spec.width {
        return Ok(format!("{sign}{digits}"));
    }
    let pad = spec.width - len;
    Ok(if spec.zero {
        format!("{sign}{}{digits}", "0".repeat(pad))
    } else {
        // Python right-aligns numbers.
        format!("{}{sign}{digits}", " ".repeat(pad))
    })
}

/// Fills a Python `str.format`-style template, as Keras' `ModelCheckpoint` does with its file
/// path: `{epoch}` is the 1-based epoch, `{batch}` the 1-based batch (when given) and any other
/// name a key of `logs` (`{val_loss:.4f}`). `{{` and `}}` are literal braces.
///
/// ```
/// use ferrovision_train::callbacks::format_template;
/// use ferrovision_train::Logs;
/// let mut logs = Logs::new();
/// logs.insert("val_loss", 0.123456);
/// let name = format_template("ckpt-{epoch:02d}-{val_loss:.3f}.safetensors", 3, None, &logs)?;
/// assert_eq!(name, "ckpt-03-0.123.safetensors");
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub fn format_template(
    template: &str,
    epoch: usize,
    batch: Option<usize>,
    logs: &Logs,
) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(Error::config(format!(
                "file name template '{template}': single '}}' (write '}}}}' for a brace)"
            )));
        }
        let end = after.find('}').ok_or_else(|| {
            Error::config(format!("file name template '{template}': unclosed '{{'"))
        })?;
        let field = &after[..end];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let arg = match name {
            "epoch" => Arg::Int(epoch as i64),
            "batch" if batch.is_some() => Arg::Int(batch.unwrap_or(0) as i64),
            _ => Arg::Float(logs.get(name).ok_or_else(|| {
                let keys: Vec<&str> = logs.iter().map(|(k, _)| k).collect();
                Error::config(format!(
                    "file name template '{template}': no value named '{name}' (available: \
                     epoch{}{}{})",
                    if batch.is_some() { ", batch" } else { "" },
                    if keys.is_empty() { "" } else { ", " },
                    keys.join(", ")
                ))
            })?),
        };
        out.push_str(&format_arg(name, arg, spec, template)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
