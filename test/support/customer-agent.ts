import { parse, type HTMLElement } from 'node-html-parser';
import { CookieJar } from 'tough-cookie';

/**
 * What a customer's browser does, minus the rendering: keeps cookies, follows redirects, and
 * fills in and submits the forms on the bank's pages. Redirects to the app's own callback are
 * not followed (nothing serves them in a test); the agent stops there and reports the URL.
 */

export interface Page {
  url: string;
  status: number;
  headers: Headers;
  body: string;
  document: HTMLElement;
}

const MAX_REDIRECTS = 10;

export class CustomerAgent {
  readonly jar = new CookieJar();
  private readonly stopAt: string[];

  /** @param stopAt URL prefixes (the apps' redirect URIs) at which redirects stop being followed. */
  constructor(stopAt: string[] = []) {
    this.stopAt = stopAt;
  }

  private async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = await this.jar.getCookieString(url);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const setCookie of response.headers.getSetCookie()) {
      await this.jar.setCookie(setCookie, url, { ignoreError: true });
    }
    return response;
  }

  /** Requests a URL and follows redirects as a browser would (POST becomes GET after 302/303). */
  async open(url: string, init: RequestInit = {}): Promise<Page> {
    let current = url;
    let currentInit = init;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
      if (hop > 0 && this.stopAt.some((prefix) => current.startsWith(prefix))) {
        return { url: current, status: 0, headers: new Headers(), body: '', document: parse('') };
      }
      const response = await this.request(current, currentInit);
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        current = new URL(location, current).href;
        currentInit = response.status === 307 || response.status === 308 ? currentInit : {};
        continue;
      }
      const body = await response.text();
      return {
        url: current,
        status: response.status,
        headers: response.headers,
        body,
        document: parse(body),
      };
    }
    throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url}`);
  }

  /**
   * Submits the form on the page whose action matches `actionContains`, as a browser would: its
   * hidden fields and the boxes ticked by default, then the given values (a list for a field that
   * repeats, such as checkboxes; it replaces what was ticked), with the button pressed
   * ({ decision: 'allow' }).
   */
  async submit(
    page: Page,
    actionContains: string,
    values: Record<string, string | string[]> = {},
  ): Promise<Page> {
    const form = page.document
      .querySelectorAll('form')
      .find((candidate) => (candidate.getAttribute('action') ?? '').includes(actionContains));
    if (!form)
      throw new Error(`no form with action containing "${actionContains}" on ${page.url}:\n${page.body}`);
    const fields = new URLSearchParams();
    for (const input of form.querySelectorAll('input')) {
      const name = input.getAttribute('name');
      const type = input.getAttribute('type');
      if (!name) continue;
      if (type === 'hidden') fields.set(name, input.getAttribute('value') ?? '');
      if ((type === 'checkbox' || type === 'radio') && input.hasAttribute('checked')) {
        fields.append(name, input.getAttribute('value') ?? 'on');
      }
    }
    for (const [name, value] of Object.entries(values)) {
      fields.delete(name);
      for (const item of Array.isArray(value) ? value : [value]) fields.append(name, item);
    }
    const action = new URL(form.getAttribute('action') ?? page.url, page.url).href;
    return this.open(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: fields.toString(),
    });
  }

  /** Signs in on the bank's sign-in page. */
  signIn(page: Page, username: string, password: string): Promise<Page> {
    return this.submit(page, '/login', { username, password });
  }

  /** Answers the bank's consent screen; `accounts` ticks exactly those IBANs instead of the defaults. */
  consent(page: Page, decision: 'allow' | 'deny', accounts?: string[]): Promise<Page> {
    return this.submit(page, '/consent', { decision, ...(accounts ? { account: accounts } : {}) });
  }
}
