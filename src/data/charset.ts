// Charset helpers: windows-1252 decoding done here, because Node 20's TextDecoder decodes that label as plain latin1.

/** The code points of windows-1252 bytes 0x80..0x9f (also what HTML shows for &#128;..&#159;, instead of C1 controls). */
export const WINDOWS_1252_C1 = [
  8364, 129, 8218, 402, 8222, 8230, 8224, 8225, 710, 8240, 352, 8249, 338, 141, 381, 143,
  144, 8216, 8217, 8220, 8221, 8226, 8211, 8212, 732, 8482, 353, 8250, 339, 157, 382, 376,
];

/** Decodes windows-1252 bytes (what HTML and this reader also use for the labels latin1, iso-8859-1 and us-ascii). */
export function decodeWindows1252(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    const chunk = Array.from(bytes.subarray(i, i + 0x8000), (b) => (b >= 0x80 && b < 0xa0 ? WINDOWS_1252_C1[b - 0x80]! : b));
    out += String.fromCharCode(...chunk);
  }
  return out;
}
