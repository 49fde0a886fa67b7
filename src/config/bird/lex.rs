//! Tokens of BIRD's configuration language, each with its position. Written with nom: one
//! small parser per token class, tried longest-first as BIRD's flex scanner does.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_until, take_while, take_while1};
use nom::character::complete::{char, multispace1, not_line_ending};
use nom::combinator::{map, recognize};
use nom::sequence::{delimited, pair, preceded};
use nom::{IResult, Parser};

use super::{Error, Pos};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare symbol (keywords are symbols too; the parser tells them apart).
    Sym(String),
    /// A `'quoted'` symbol: a name, never a keyword.
    Quoted(String),
    Str(String),
    Num(u64),
    Ip4(Ipv4Addr),
    Ip6(Ipv6Addr),
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Operators, longest first.
const PUNCT: [&str; 24] = [
    "!=", "!~", "&&", "||", "<=", ">=", "{", "}", "(", ")", "[", "]", ";", ",", "=", "~", "<", ">",
    "!", "+", "-", "*", "/", ".",
];
const PUNCT_TAIL: [&str; 2] = [":", "?"];

/// Splits `text` (the contents of `file`) into tokens, ending with [`Tok::Eof`].
pub fn lex(file: &Arc<str>, text: &str) -> Result<Vec<Token>, Error> {
    let mut out = Vec::new();
    let mut rest = text;
    let (mut line, mut col) = (1u32, 1u32);
    let pos = |line, col| Pos {
        file: file.clone(),
        line,
        col,
    };
    loop {
        // Whitespace and comments.
        let before = rest;
        rest = skip(rest).map_err(|at| {
            let (l, c) = advance(line, col, &before[..before.len() - at.len()]);
            Error::new(&pos(l, c), "Unterminated comment")
        })?;
        (line, col) = advance(line, col, &before[..before.len() - rest.len()]);
        if rest.is_empty() {
            out.push(Token {
                tok: Tok::Eof,
                pos: pos(line, col),
            });
            return Ok(out);
        }
        let here = pos(line, col);
        let (r, tok) = token(rest).map_err(|_| lex_error(&here, rest))?;
        let tok = tok.map_err(|m| Error::new(&here, m))?;
        (line, col) = advance(line, col, &rest[..rest.len() - r.len()]);
        rest = r;
        out.push(Token { tok, pos: here });
    }
}

fn lex_error(pos: &Pos, rest: &str) -> Error {
    if rest.starts_with('"') {
        Error::new(pos, "Unterminated string")
    } else if rest.starts_with('\'') {
        Error::new(pos, "Unterminated quoted symbol")
    } else {
        let c = rest.chars().next().unwrap_or(' ');
        Error::new(pos, format!("Unknown character `{c}`"))
    }
}

/// Moves a (line, column) pair over `consumed`.
fn advance(mut line: u32, mut col: u32, consumed: &str) -> (u32, u32) {
    for c in consumed.chars() {
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Skips whitespace, `# …` and `/* … */` comments. An unterminated `/*` is an error that
/// returns the input from the comment's start.
fn skip(i: &str) -> Result<&str, &str> {
    let mut i = i;
    loop {
        if let Ok((r, _)) = alt((
            multispace1::<&str, nom::error::Error<&str>>,
            recognize(preceded(char('#'), not_line_ending)),
        ))
        .parse(i)
        {
            i = r;
        } else if i.starts_with("/*") {
            let comment: IResult<&str, &str> =
                delimited(tag("/*"), take_until("*/"), tag("*/")).parse(i);
            i = comment.map_err(|_| i)?.0;
        } else {
            return Ok(i);
        }
    }
}

/// One token. The inner `Result` carries a lexical error with a message (a bad address or a
/// number too large), the outer one "no token starts here".
type Lexed = Result<Tok, String>;

fn token(i: &str) -> IResult<&str, Lexed> {
    alt((address_or_number, symbol, quoted_symbol, string, punct)).parse(i)
}

/// IPv6 addresses, IPv4 addresses and decimal numbers all start as a run of hex digits,
/// colons and dots; the run decides which it is.
fn address_or_number(i: &str) -> IResult<&str, Lexed> {
    let (r, run) = take_while1(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '.')(i)?;
    if run.contains(':') {
        // A trailing `:` belongs to a `case` arm, not to the address.
        if run.matches(':').count() >= 2
            && let Ok(a) = run.parse::<Ipv6Addr>()
        {
            return Ok((r, Ok(Tok::Ip6(a))));
        }
    }
    let (r, run) = take_while1(|c: char| c.is_ascii_digit() || c == '.')(i)?;
    // A symbol starting with hex letters (`fd80_x`, `deadbeef`) is not a number.
    if r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Digit,
        )));
    }
    let run = run.trim_end_matches('.');
    let r = &i[run.len()..];
    if run.contains('.') {
        return Ok((
            r,
            run.parse::<Ipv4Addr>()
                .map(Tok::Ip4)
                .map_err(|_| format!("Invalid IPv4 address {run}")),
        ));
    }
    Ok((
        r,
        run.parse::<u64>()
            .map(Tok::Num)
            .map_err(|_| format!("Number out of range: {run}")),
    ))
}

fn symbol(i: &str) -> IResult<&str, Lexed> {
    map(
        recognize(pair(
            take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
            take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
        )),
        |s: &str| Ok(Tok::Sym(s.to_string())),
    )
    .parse(i)
}

/// Text between two `q`s on one line (BIRD has no escapes in either form).
fn quoted(q: char) -> impl Fn(&str) -> IResult<&str, &str> {
    move |i| delimited(char(q), take_while(|c: char| c != q && c != '\n'), char(q)).parse(i)
}

/// `'bgp_x-y_importFilterV4'`: a name of any characters but a quote and a newline.
fn quoted_symbol(i: &str) -> IResult<&str, Lexed> {
    let (r, s) = quoted('\'')(i)?;
    if s.is_empty() {
        return Ok((r, Err("Empty quoted symbol".to_string())));
    }
    Ok((r, Ok(Tok::Quoted(s.to_string()))))
}

fn string(i: &str) -> IResult<&str, Lexed> {
    map(quoted('"'), |s: &str| Ok(Tok::Str(s.to_string()))).parse(i)
}

fn punct(i: &str) -> IResult<&str, Lexed> {
    for p in PUNCT.iter().chain(PUNCT_TAIL.iter()) {
        if let Some(r) = i.strip_prefix(p) {
            return Ok((r, Ok(Tok::Punct(p))));
        }
    }
    Err(nom::Err::Error(nom::error::Error::new(
        i,
        nom::error::ErrorKind::Tag,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(&Arc::from("t"), s)
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn addresses_numbers_symbols() {
        assert_eq!(
            toks("fd80:24e2::3 10.0.0.1 64512 fd80_x 'a-b' \"s\" !~ ::1"),
            vec![
                Tok::Ip6("fd80:24e2::3".parse().unwrap()),
                Tok::Ip4("10.0.0.1".parse().unwrap()),
                Tok::Num(64512),
                Tok::Sym("fd80_x".into()),
                Tok::Quoted("a-b".into()),
                Tok::Str("s".into()),
                Tok::Punct("!~"),
                Tok::Ip6("::1".parse().unwrap()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn positions_skip_comments() {
        let t = lex(&Arc::from("f"), "# c\n /* x\n y */ ab;").unwrap();
        assert_eq!((t[0].pos.line, t[0].pos.col), (3, 7));
        assert_eq!((t[1].pos.line, t[1].pos.col), (3, 9));
    }

    #[test]
    fn lexical_errors_have_positions() {
        let e = lex(&Arc::from("f"), "a\n  \"open").unwrap_err();
        assert_eq!(e.to_string(), "f:2:3: Unterminated string");
        let e = lex(&Arc::from("f"), "x /* never").unwrap_err();
        assert_eq!(e.to_string(), "f:1:3: Unterminated comment");
        let e = lex(&Arc::from("f"), "1.2.3.4.5").unwrap_err();
        assert_eq!(e.to_string(), "f:1:1: Invalid IPv4 address 1.2.3.4.5");
    }
}
