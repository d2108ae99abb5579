import { describe, expect, it } from 'vitest';
import { emailHtml, emailText } from '../../src/channels/email/layout.js';
import { escapeMarkdown } from '../../src/core/templates.js';

describe('the e-mail layout', () => {
  const markdown = [
    `# Hello ${escapeMarkdown('[Ada](https://evil.example) **<b>bold</b>** & co')}`,
    '',
    'Your order **A-1** shipped. [Track it](https://shop.example.com/t/1), or [this](javascript:alert(1)).',
    '',
    '- one',
    '- two',
  ].join('\n');
  const footer = {
    text: 'You get these e-mails about orders.',
    links: [
      { text: 'Unsubscribe', url: 'https://h.example/u/t' },
      { text: 'Preferences', url: 'https://h.example/p/t' },
    ],
  };

  it('renders the Markdown inside a responsive layout with inline styles, data adding no markup', () => {
    const html = emailHtml({ subject: 'Shipped <now>', markdown, footer });
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<title>Shipped &#60;now&#62;</title>');
    expect(html).toContain('max-width:600px');
    expect(html).toMatch(
      /<h1 style="[^"]+">Hello \[Ada\]\(https:\/\/evil\.example\) \*\*&lt;b&gt;bold&lt;\/b&gt;\*\* &amp; co<\/h1>/,
    );
    expect(html).not.toContain('evil.example"');
    expect(html).toMatch(/<strong>A-1<\/strong>/);
    expect(html).toMatch(/<a href="https:\/\/shop\.example\.com\/t\/1" style="[^"]+">Track it<\/a>/);
    expect(html).not.toContain('javascript:');
    expect(html).toMatch(/<ul style="[^"]+"><li>one<\/li><li>two<\/li><\/ul>/);
    expect(html).toMatch(
      /<a href="https:\/\/h\.example\/u\/t"[^>]*>Unsubscribe<\/a> &middot; <a href="https:\/\/h\.example\/p\/t"[^>]*>Preferences<\/a>/,
    );
  });

  it('makes the text alternative from the same source', () => {
    expect(emailText({ subject: 's', markdown, footer })).toBe(
      [
        'Hello [Ada](https://evil.example) **<b>bold</b>** & co',
        '',
        'Your order A-1 shipped. Track it (https://shop.example.com/t/1), or this.',
        '',
        '- one',
        '- two',
        '',
        '--',
        'Unsubscribe: https://h.example/u/t',
        'Preferences: https://h.example/p/t',
      ].join('\n'),
    );
  });
});
