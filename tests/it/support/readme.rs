//! README sections as commands, for tests that run a section exactly as
//! written: the ```sh blocks of one section (up to the next heading), one
//! command per line, split into words like a shell does (quotes, `\`
//! continuations, `#` comments, a trailing `&`).

/// The body of the section under `heading` (up to the next `#`/`##`/`###`
/// heading).
pub fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no {heading:?} section"))
        + heading.len()
        + 2;
    let body = &readme[start..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| {
            let line = body[i + 1..].lines().next().unwrap_or("");
            line.starts_with("# ") || line.starts_with("## ") || line.starts_with("### ")
        })
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// The commands of every ```sh block of `section`, as words.
pub fn commands(section: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in section.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(cont) = t.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let words = words(&pending);
        pending.clear();
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

/// Shell words of one line: quotes kept together (and removed), `$( … )`
/// kept as one word with its text, an unquoted `#` starting a comment, a
/// trailing `&` dropped.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                started = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    cur.push(q);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                started = true;
                let mut depth = 0;
                cur.push('$');
                for q in chars.by_ref() {
                    cur.push(q);
                    match q {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '#' if !started => break,
            c if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                started = true;
                cur.push(c);
            }
        }
    }
    if started {
        out.push(cur);
    }
    if out.last().is_some_and(|w| w == "&") {
        out.pop();
    }
    out
}
