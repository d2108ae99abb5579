// Text into HTML text or an attribute value: the five characters that could end either, as numeric
// references.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
