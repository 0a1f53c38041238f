//! Text made fit for a Routee `SAY`.
//!
//! Routee documents no SSML (reference §3.2, a gap) and caps text at 1000
//! characters. Whatever reaches `message.text` therefore passes through here:
//!
//! - [`speakable`] (assistant and template text): markup tags are removed the way
//!   Voiceflow's own `stripSSML` does (`<break/>`, `<voice name=…>`, `<audio …/>`),
//!   XML entities are unescaped (`&amp;` → `&`), control characters become spaces,
//!   and whitespace collapses to single spaces.
//! - [`spoken`] (Voiceflow text: LLM and knowledge-base answers carry
//!   Markdown): [`strip_markdown`] first (`**bold**`, `_em_`, `` `code` ``,
//!   `# headings`, `- bullets`, `> quotes`, `[links](url)` read as their text),
//!   then [`speakable`]. A lone `*` or `#` ("press * to go back") is a key name
//!   and stays.
//! - [`plain`] (variable values substituted into templates): the value is text, not
//!   markup, so nothing is interpreted; only control characters go.
//! - Both drop every `<` and `>` that is left. Spoken text never holds an angle
//!   bracket, so even if Routee's engine did honour SSML, no assistant or
//!   variable text could smuggle in a tag (an `<audio src>` to another URL, say).
//! - [`split_for_say`] cuts text longer than [`MAX_SAY_CHARS`] into several
//!   `SAY`s: at the last sentence end in the second half of the window, else at
//!   the last space, else (one 1000-character word) anywhere.
//!
//! Lengths are counted in characters (`char`s), the unit Routee's limit is given in.

use crate::routee::MAX_SAY_CHARS;

/// Assistant or template text as it should be read: tags stripped, entities
/// unescaped, no control characters or angle brackets, whitespace collapsed.
pub fn speakable(text: &str) -> String {
    finish(&unescape_entities(&strip_tags(text)))
}

/// Voiceflow text as it should be read: Markdown, then SSML, stripped.
pub fn spoken(text: &str) -> String {
    speakable(&strip_markdown(text))
}

/// Markdown read aloud as its text: headings, bullets, quotes and rules lose
/// their marks (a heading ends as a sentence, so it is not run into the next
/// line), emphasis and code lose their delimiters, links and images read as
/// their text. Only paired delimiters at word boundaries count, so `2*3`,
/// `snake_case` and a key named `*` or `#` are kept as written.
pub fn strip_markdown(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut l = line.trim();
        if l.starts_with("```") || l.starts_with("~~~") || is_rule(l) {
            continue;
        }
        let mut heading = false;
        let hashes = l.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && l[hashes..].starts_with(' ') {
            l = l[hashes..].trim_start();
            heading = true;
        }
        while let Some(rest) = l.strip_prefix("> ").or_else(|| l.strip_prefix('>')) {
            l = rest.trim_start();
        }
        for bullet in ["- ", "* ", "+ "] {
            if let Some(rest) = l.strip_prefix(bullet) {
                l = rest.trim_start();
                break;
            }
        }
        let mut inline = links(l);
        for delim in ["**", "__", "~~", "*", "_", "`"] {
            inline = unwrap_pairs(&inline, delim);
        }
        if heading && !inline.ends_with(['.', '!', '?', ':']) {
            inline.push('.');
        }
        lines.push(inline);
    }
    lines.join("\n")
}

/// `---`, `***`, `___` (three or more, spaces allowed): a thematic break.
fn is_rule(line: &str) -> bool {
    let marks: Vec<char> = line.chars().filter(|c| !c.is_whitespace()).collect();
    marks.len() >= 3 && ['-', '*', '_'].iter().any(|m| marks.iter().all(|c| c == m))
}

/// `[text](url)` and `![alt](url)` read as their text.
fn links(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let link = after.find("](").and_then(|close| {
            let target = &after[close + 2..];
            target.find(')').map(|end| (close, close + 2 + end + 1))
        });
        match link {
            Some((close, past)) if !after[..close].contains(['[', ']']) => {
                out.push_str(rest[..open].strip_suffix('!').unwrap_or(&rest[..open]));
                out.push_str(&after[..close]);
                rest = &after[past..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes `delim` pairs around text: an opener follows no letter or digit and
/// precedes a non-space; a closer follows a non-space and precedes no letter
/// or digit. Unpaired delimiters stay.
fn unwrap_pairs(line: &str, delim: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let space = |c: Option<char>| c.is_none_or(char::is_whitespace);
    let opener = |s: &str, i: usize| {
        s[i..].starts_with(delim)
            && !word(s[..i].chars().next_back())
            && !space(s[i + delim.len()..].chars().next())
    };
    let closer = |s: &str, j: usize| {
        j > 0
            && s[j..].starts_with(delim)
            && !space(s[..j].chars().next_back())
            && !word(s[j + delim.len()..].chars().next())
    };
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    'outer: while let Some(open) = rest
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| opener(rest, i))
    {
        let inner = &rest[open + delim.len()..];
        for (j, _) in inner.char_indices() {
            if closer(inner, j) {
                out.push_str(&rest[..open]);
                out.push_str(&inner[..j]);
                rest = &inner[j + delim.len()..];
                continue 'outer;
            }
        }
        // No closer: the delimiter is text.
        out.push_str(&rest[..open + delim.len()]);
        rest = inner;
    }
    out.push_str(rest);
    out
}

/// A plain-text value (a template variable): only control characters and angle
/// brackets are dropped, and whitespace collapsed. Entities and tag-like text are
/// kept as the literal text they are (minus the brackets).
pub fn plain(text: &str) -> String {
    finish(text)
}

/// Drops angle brackets and control characters, collapses whitespace, and glues
/// punctuation-only words to the word before (a removed tag leaves `Hello .`).
/// The last step of [`speakable`] and [`plain`], for text assembled from both.
pub fn finish(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| {
            if c.is_control() || c == '<' || c == '>' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut out = String::with_capacity(spaced.len());
    for word in spaced.split_whitespace() {
        let glued = word
            .chars()
            .all(|c| matches!(c, '.' | ',' | '!' | '?' | ';' | ':'));
        if !out.is_empty() && !glued {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Removes markup tags: a `<` followed by a letter, `/`, `!` or `?` opens a tag
/// that runs to the next `>` (or, unclosed, to the end, as Voiceflow's stripSSML
/// regex does). Each tag becomes a space so `a<break/>b` does not read as `ab`.
pub fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let opens_tag = c == '<'
            && chars
                .peek()
                .is_some_and(|n| n.is_alphabetic() || matches!(n, '/' | '!' | '?'));
        if opens_tag {
            for t in chars.by_ref() {
                if t == '>' {
                    break;
                }
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// Unescapes the XML/HTML entities text-to-speech markup uses: the five XML ones,
/// `&nbsp;`, and numeric references. Anything else is left as written.
pub fn unescape_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        // Entities are short; a `;` further away belongs to something else.
        let decoded = after
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| decode_entity(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Splits text into pieces of at most `max_chars` characters (see the module doc
/// for where it cuts). Empty text gives no pieces. `max_chars` of 0 is treated as 1.
pub fn split_for_say(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while let Some((limit, _)) = rest.char_indices().nth(max_chars) {
        // `limit` is the byte index of the first character that does not fit.
        let word_cut = if rest[limit..].starts_with(char::is_whitespace) {
            Some(limit)
        } else {
            rest[..limit].rfind(char::is_whitespace).filter(|&i| i > 0)
        };
        let cut = sentence_cut(rest, limit, max_chars)
            .or(word_cut)
            .unwrap_or(limit);
        let piece = rest[..cut].trim_end();
        if !piece.is_empty() {
            pieces.push(piece.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The byte index just after the last sentence end (`.`, `!`, `?`, `…` followed
/// by whitespace) that fits before `limit`, if it leaves a piece of at least half
/// the window: a sentence end near the start would make a uselessly short `SAY`.
fn sentence_cut(text: &str, limit: usize, max_chars: usize) -> Option<usize> {
    let window = &text[..limit];
    let mut best = None;
    for (i, c) in window.char_indices() {
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        let end = i + c.len_utf8();
        if text[end..].starts_with(char::is_whitespace) {
            best = Some(end);
        }
    }
    best.filter(|&end| window[..end].chars().count() * 2 >= max_chars)
}

/// [`split_for_say`] at Routee's limit.
pub fn say_pieces(text: &str) -> Vec<String> {
    split_for_say(text, MAX_SAY_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_read_as_its_text() {
        for (md, said) in [
            (
                "**Server room 2** is flooding.",
                "Server room 2 is flooding.",
            ),
            ("It is _urgent_ and *now*.", "It is urgent and now."),
            ("Run `restart` ~~twice~~.", "Run restart twice."),
            (
                "# Ticket 4711\nThe server room.",
                "Ticket 4711. The server room.",
            ),
            (
                "## Steps:\n- first\n* second\n+ third",
                "Steps: first second third",
            ),
            ("> quoted\n---\nafter", "quoted after"),
            (
                "See [the runbook](https://x.example/rb) or ![a map](m.png).",
                "See the runbook or a map.",
            ),
            ("```\ncode\n```", "code"),
        ] {
            assert_eq!(spoken(md), said, "{md:?}");
        }
    }

    #[test]
    fn key_names_and_words_that_look_like_markdown_are_kept() {
        for text in [
            "Press * to go back, # to repeat.",
            "Press 1 for snake_case names.",
            "2*3*4 is 24.",
            "A [bracket] alone, and **unclosed.",
            "#hashtag stays",
        ] {
            assert_eq!(spoken(text), text, "{text:?}");
        }
        assert_eq!(
            spoken("Markdown <break time=\"1s\"/> **and** SSML"),
            "Markdown and SSML"
        );
    }

    #[test]
    fn ssml_tags_are_stripped_and_entities_unescaped() {
        assert_eq!(
            speakable(
                "<speak>Hello <break time=\"1s\"/>world. <voice name=\"Joanna\">Fish &amp; chips</voice></speak>"
            ),
            "Hello world. Fish & chips"
        );
        assert_eq!(speakable("Done<break/>."), "Done.");
        assert_eq!(speakable("a<break/>b"), "a b");
        assert_eq!(
            speakable("&#72;&#x69; &quot;you&quot; &apos;n&apos; &nbsp;"),
            "Hi \"you\" 'n'"
        );
    }

    #[test]
    fn unknown_entities_and_lone_ampersands_are_kept() {
        assert_eq!(
            unescape_entities("R&D &copy; &; a & b"),
            "R&D &copy; &; a & b"
        );
        assert_eq!(
            unescape_entities("&#xZZ; &#99999999;"),
            "&#xZZ; &#99999999;"
        );
    }

    #[test]
    fn an_unclosed_tag_runs_to_the_end_like_voiceflows_strip() {
        assert_eq!(speakable("Hello <break time"), "Hello");
    }

    #[test]
    fn escaped_or_stray_angle_brackets_never_reach_the_text() {
        assert_eq!(
            speakable("&lt;audio src=x&gt; 3 < 4 > 2"),
            "audio src=x 3 4 2"
        );
        assert_eq!(
            plain("<speak><audio src=\"https://evil/x.wav\"/></speak>"),
            "speak audio src=\"https://evil/x.wav\"/ /speak"
        );
    }

    #[test]
    fn control_characters_and_whitespace_collapse_to_single_spaces() {
        assert_eq!(speakable("  one\n\ttwo\u{0}three  "), "one two three");
        assert_eq!(plain("a\r\nb"), "a b");
    }

    #[test]
    fn plain_values_keep_entities_and_ampersands_literally() {
        assert_eq!(plain("Fish &amp; chips"), "Fish &amp; chips");
    }

    #[test]
    fn short_text_is_one_piece_and_empty_text_none() {
        assert_eq!(split_for_say("Hello.", 10), ["Hello."]);
        assert!(split_for_say("   ", 10).is_empty());
    }

    #[test]
    fn long_text_splits_at_the_last_sentence_end_that_fits() {
        let text = "One two three. Four five six. Seven eight nine.";
        assert_eq!(
            split_for_say(text, 32),
            ["One two three. Four five six.", "Seven eight nine."]
        );
    }

    #[test]
    fn a_sentence_end_too_early_in_the_window_loses_to_a_word_boundary() {
        let text = "Hi. alpha beta gamma delta epsilon";
        assert_eq!(
            split_for_say(text, 20),
            ["Hi. alpha beta gamma", "delta epsilon"]
        );
    }

    #[test]
    fn text_without_spaces_is_cut_at_the_limit() {
        assert_eq!(split_for_say("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let greek = "αβγδ εζηθ";
        assert_eq!(split_for_say(greek, 4), ["αβγδ", "εζηθ"]);
        assert_eq!(split_for_say(greek, 9), [greek]);
    }

    #[test]
    fn every_piece_of_a_long_text_fits_routees_limit() {
        let text = "This sentence has exactly forty-four chars. ".repeat(60);
        let pieces = say_pieces(&text);
        assert!(pieces.len() >= 3);
        assert!(pieces.iter().all(|p| p.chars().count() <= MAX_SAY_CHARS));
        assert!(pieces.iter().all(|p| p.ends_with('.')));
        assert_eq!(pieces.join(" "), text.trim());
    }
}
