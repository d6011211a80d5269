//! Python-compatible number formatting, one implementation for the workspace: `repr(float)`
//! ([`py_float_repr`]: CSV logs and checkpoint names like Keras), `'{:.Nf}'` ([`py_fixed`]:
//! exact half-to-even rounding of the binary value, as pycocotools' printed summaries and
//! Keras' file-name templates) and `'{:.Ne}'` ([`py_sci`]).

/// Python's `repr(float)`: the shortest round-tripping digits, scientific notation below 1e-4
/// and from 1e16 on (`0.1`, `1.0`, `1e-05`, `1.5e+16`, `nan`, `inf`).
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the same shortest digits Python uses; only the layout differs.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let s = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{s}")
    } else {
        format!("{sign}{mantissa}{}", py_exponent(exp))
    }
}

/// Python's exponent suffix: sign always, at least two digits (`e-05`, `e+16`).
fn py_exponent(exp: i32) -> String {
    format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Python's `'{:.Ne}'.format(v)` (`E` with `upper`): Rust's digits with Python's exponent
/// layout (`1.50e-05`).
pub fn py_sci(v: f64, precision: usize, upper: bool) -> String {
    let s = format!("{v:.precision$e}");
    let (m, e) = s.split_once('e').expect("`{:e}` always has an exponent");
    let e: i32 = e.parse().expect("`{:e}` exponent is an integer");
    let out = format!("{m}{}", py_exponent(e));
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

/// Python's `'{:.Nf}'.format(v)`: the exact binary value rounded half-to-even (Rust's `{:.N}`
/// rounds exact ties such as 0.5625 away from zero, Python to even: "0.562").
pub fn py_fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    // Every finite f64 has at most 1074 fractional decimal digits, so this is exact.
    let exact = format!("{:.1100}", v.abs());
    let (int_part, frac) = exact.split_once('.').unwrap_or((&exact, ""));
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac.bytes().take(decimals))
        .collect();
    let rest = &frac.as_bytes()[decimals.min(frac.len())..];
    let first = rest.first().copied().unwrap_or(b'0');
    let tail_nonzero = rest.iter().skip(1).any(|&c| c != b'0');
    let last_odd = digits.last().is_some_and(|d| (d - b'0') % 2 == 1);
    let up = first > b'5' || (first == b'5' && (tail_nonzero || last_odd));
    if up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let n_int = digits.len() - decimals;
    let mut s = String::new();
    let is_zero = digits.iter().all(|&d| d == b'0');
    if v.is_sign_negative() && !(is_zero && v == 0.0) {
        s.push('-');
    }
    s.push_str(std::str::from_utf8(&digits[..n_int]).unwrap());
    if decimals > 0 {
        s.push('.');
        s.push_str(std::str::from_utf8(&digits[n_int..]).unwrap());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python_layouts() {
        for (v, want) in [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e16, "1.5e+16"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5, "-2.5"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(py_float_repr(v), want, "{v}");
        }
    }

    #[test]
    fn fixed_rounds_ties_to_even_like_python() {
        assert_eq!(py_fixed(0.5625, 3), "0.562");
        assert_eq!(py_fixed(0.5635, 3), "0.564"); // 0.5635 is just above the tie in binary (Python agrees)
        assert_eq!(py_fixed(0.0625, 3), "0.062");
        assert_eq!(py_fixed(0.9996, 3), "1.000");
        assert_eq!(py_fixed(-1.0, 3), "-1.000");
        assert_eq!(py_fixed(0.1875, 3), "0.188");
        assert_eq!(py_fixed(0.0, 3), "0.000");
    }

    #[test]
    fn sci_uses_python_exponents() {
        assert_eq!(py_sci(1.5e-5, 2, false), "1.50e-05");
        assert_eq!(py_sci(12345.0, 1, true), "1.2E+04");
    }
}
