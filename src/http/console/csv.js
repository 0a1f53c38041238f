// A CSV reader for the contacts table (RFC 4180: quoted fields, doubled quotes,
// CRLF or LF). Blank lines are skipped and fields trimmed, as the API's reader
// does, so row n here is contacts[n] in the API's answers.

export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const src = text.replace(/^\uFEFF/, '');
  const endRow = () => {
    row.push(field);
    field = '';
    if (!(row.length === 1 && row[0].trim() === '')) rows.push(row.map((f) => f.trim()));
    row = [];
  };
  while (i < src.length) {
    const c = src[i];
    if (quoted) {
      if (c === '"' && src[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i += 1;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i += 1;
      endRow();
    } else field += c;
    i += 1;
  }
  if (field !== '' || row.length) endRow();
  return rows;
}

/** The contacts of a CSV file: {contacts, error}. */
export function contactsFromCsv(text) {
  const rows = parseCsv(text);
  if (!rows.length) return { contacts: [], error: 'the file is empty' };
  const header = rows[0].map((h) => h.toLowerCase());
  const at = (name) => header.indexOf(name);
  if (at('name') < 0 || at('phone') < 0) {
    return { contacts: [], error: 'the first row must name the columns: name,phone (and optionally language)' };
  }
  const contacts = rows.slice(1).map((r) => ({
    name: r[at('name')] || '',
    phone: r[at('phone')] || '',
    language: at('language') >= 0 ? r[at('language')] || '' : '',
  }));
  return { contacts, error: null };
}
