// How views load what they show, where more than one view does it the same way: a list continued a page at a
// time ("Load more"), and a view asked again on a timer while it is shown.
import { viewSession } from './dom.js';

/**
 * A "Load more" button under a table paged with next_cursor. The view shows the first page itself and then
 * hands its next_cursor over with `from(page)`; each click asks `load(cursor)` for the page after, appends
 * `rows(page)` to `tbody` and calls `describe()`, unless the view has moved on meanwhile (`session`, the
 * view's own). The button is hidden while there is nothing further, and disabled while a page is on its way.
 */
export function pager({ button, tbody, session, shell, load, rows, describe }) {
  let cursor = '';
  /** Goes on after this page (or its absence: nothing further). */
  function from(page) {
    cursor = page?.nextCursor ?? '';
    button.hidden = !cursor;
  }
  button.addEventListener('click', async () => {
    const fresh = session.current();
    button.disabled = true;
    try {
      const page = await load(cursor);
      if (!fresh()) return;
      tbody.append(...rows(page));
      from(page);
      describe();
    } catch (error) {
      if (fresh()) shell.fail(error);
    } finally {
      button.disabled = false;
    }
  });
  return {
    from,
    /** Nothing further: the view was emptied. */
    clear: () => from(undefined),
    /** Whether Load more has anything to show. */
    get more() {
      return cursor !== '';
    },
  };
}

/**
 * A view that shows one answer and asks again every `everyMs` while shown: `ask()` is the call, `draw(answer)`
 * shows its answer. `start()` asks now, dropping any answer still on its way (entering the view, or a changed
 * question); `stop()` drops it too and stops the timer (leaving the view). A failed call is reported and
 * asked again on the next tick.
 */
export function refresher({ shell, everyMs, ask, draw }) {
  const session = viewSession();
  let timer;
  async function start() {
    const fresh = session.renew();
    clearTimeout(timer);
    try {
      const answer = await ask();
      if (!fresh()) return;
      draw(answer);
      shell.clearError();
      timer = setTimeout(start, everyMs);
    } catch (error) {
      if (!fresh()) return;
      // Set before reporting: a refused key leaves the view, which stops it.
      timer = setTimeout(start, everyMs);
      shell.fail(error);
    }
  }
  return {
    start,
    stop() {
      session.renew();
      clearTimeout(timer);
    },
  };
}
