// A tiny history router: the path is the page; hearthd answers every non-API path with
// index.html, so reloads and deep links work. Links call `navigate`.
export type Listener = (path: string) => void;

export class Router {
  private listeners = new Set<Listener>();
  constructor(private readonly win: Pick<Window, 'location' | 'history' | 'addEventListener'> = window) {
    win.addEventListener('popstate', () => this.emit());
  }
  get path(): string {
    return this.win.location.pathname;
  }
  navigate(path: string, replace = false): void {
    if (path === this.path) return;
    if (replace) this.win.history.replaceState(null, '', path);
    else this.win.history.pushState(null, '', path);
    this.emit();
  }
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    fn(this.path);
    return () => this.listeners.delete(fn);
  }
  private emit(): void {
    for (const l of this.listeners) l(this.path);
  }
}
