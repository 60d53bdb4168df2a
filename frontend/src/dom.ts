/** A small element builder: attributes as strings, children as nodes or text. No innerHTML, so device data is never parsed as markup. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** Splits a text field into values: commas, semicolons or whitespace separate them. */
export function splitList(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((value) => value.trim()).filter(Boolean))];
}

/** `HH:MM:SS` in local time. */
export function clock(timestamp: number): string {
  const date = new Date(timestamp);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((part) => String(part).padStart(2, '0')).join(':');
}
