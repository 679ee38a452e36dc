/**
 * nbsteps in JupyterLab: a badge on every `%%step` cell and the plan in a side
 * panel, drawn from the kernel's state (comm target `nbsteps`, see
 * nbsteps/ipython/lab.py), keyed by cell id. Every tab of a notebook opens its
 * own comm, so every tab, a reloaded page and a reopened notebook show the
 * kernel's current state. Without a kernel (or one without nbsteps) a badge
 * shows the state saved in the cell's metadata (`metadata.nbsteps`, written
 * just before each save), marked "as saved at ...".
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

const PLUGIN_ID = 'nbsteps:plugin';
const TARGET = 'nbsteps';
const META = 'nbsteps';
/** the kernel's messages carry "nbsteps": PROTOCOL (nbsteps/ipython/lab.py) */
const PROTOCOL = 2;
/** a tab that still lacks the kernel's whole state asks again after this long (ms) */
const ASK_AGAIN_MS = 3000;
const KERNEL_ACTIONS = 'https://events.jupyter.org/jupyter_server/kernel_actions/v1';
const STEP_LINE = /^\s*%%step\s+([A-Za-z0-9_][A-Za-z0-9_-]*)/;

/** A step's state as the kernel sends it (nbsteps/ipython/lab.py step_state). */
interface IStepState {
  step: string;
  status: string;
  started: number | null;
  finished: number | null;
  duration: number | null;
  origin: string;
  stale: boolean;
  stale_reason: string;
  attempts: number;
  error: string;
  confirming: string;
  line: string;
  cell_id?: string | null;
  /** only in saved metadata: when the notebook was saved (ISO time) */
  saved_at?: string;
}

interface IStateMsg {
  type: 'state';
  full: boolean;
  now: number;
  /** the kernel process (its session) */
  kernel: string;
  /** the number of this state message among the process's state messages (1, 2, ...) */
  seq: number;
  cells: { [cellId: string]: IStepState };
  unbound: { [step: string]: IStepState };
}

interface IPanelMsg {
  type: 'panel';
  html: string;
  now: number;
}

const ORIGIN_WORDS: { [origin: string]: string } = {
  executed: 'executed in this run',
  kept: 'kept: already in the kernel, up to date',
  restored: 'restored from the store'
};

/** Seconds as the kernel's views write them: 850 ms, 2.1 s, 3 min 5 s. */
export function fmtSeconds(s: number): string {
  if (s < 0.001) {
    return '<1 ms';
  }
  if (s < 1) {
    return `${Math.round(s * 1000)} ms`;
  }
  if (s < 60) {
    return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  }
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - 60 * m)} s`;
}

/** The words of a badge: [short text, full description for aria-label and title]. */
export function describe(st: IStepState, elapsed: number | null): [string, string] {
  let status = st.status;
  let long = st.status;
  const took = elapsed !== null ? ` for ${fmtSeconds(Math.max(0, elapsed))}` : '';
  if (st.status === 'running') {
    status = st.attempts > 1 ? `running attempt ${st.attempts}${took}` : `running${took}`;
    long = status;
  } else if (st.status === 'retrying') {
    // between two attempts: `attempts` is the number of the one that failed
    status = `attempt ${st.attempts} failed, retrying${took}`;
    long = st.error ? `${status}: ${st.error}` : status;
  } else if (st.status === 'unregistered') {
    status = 'not registered in this kernel yet';
    long = `${status}: run the cell`;
  } else if (st.status === 'waiting') {
    status = 'waiting for confirmation';
    long = st.confirming ? `${status}: ${st.confirming}` : status;
  } else if (st.status === 'failed' || st.status === 'blocked' || st.status === 'cancelled') {
    long = st.error ? `${st.status}: ${st.error}` : st.status;
  }
  const parts = [status];
  const longParts = [long];
  if (st.status === 'completed' && st.origin) {
    parts.push(st.origin);
    longParts.push(ORIGIN_WORDS[st.origin] || st.origin);
  }
  if (st.attempts > 1 && (st.status === 'completed' || st.status === 'failed')) {
    parts.push(`${st.attempts} attempts`);
    longParts.push(`after ${st.attempts} attempts`);
  }
  const settled = st.status !== 'running' && st.status !== 'retrying';
  if (st.duration !== null && st.duration !== undefined && settled) {
    parts.push(fmtSeconds(st.duration));
    longParts.push(`took ${fmtSeconds(st.duration)}`);
  }
  if (st.stale) {
    parts.push('stale');
    longParts.push(`stale: ${st.stale_reason || 'it will run again'}`);
  }
  let text = parts.join(' · ');
  let words = `step ${st.step}: ${longParts.join(', ')}`;
  if (st.saved_at) {
    const when = new Date(st.saved_at).toLocaleString();
    text = `as saved at ${when}: ${text}`;
    words = `${words} (as saved at ${when}, not the kernel's current state)`;
  }
  return [text, words];
}

/** The step name in a `%%step NAME` cell's source, or null. */
export function stepOfSource(source: string): string | null {
  const m = STEP_LINE.exec(source);
  return m ? m[1] : null;
}

/** One notebook panel's link to its kernel: the comm, the states, the badges.
 *
 * The badges never depend on the order in which restart signals, comm opens and state
 * messages arrive. The state held is the state of one kernel process (`stateKernel`: the
 * process's session, which every message of that process carries), and it is dropped only
 * on evidence that the kernel is now another process (a reply of another session, see
 * `onIopub`) or is dead; a restart signal (the server's event, a status) only makes the tab
 * ask the kernel for its whole state (a new comm). Each state message carries its number
 * (`seq`): a delta is applied on top of the state it follows, and a tab that finds one
 * missing (or holds no whole state of that process) asks for the whole state again; until it
 * has it, a cell whose step it has no state of shows no "not registered" badge.
 */
class NotebookSteps {
  constructor(
    readonly panel: NotebookPanel,
    private readonly options: { badges: () => boolean; onPanel: () => void }
  ) {
    const session = panel.sessionContext;
    session.kernelChanged.connect(() => this.connect('kernel changed'));
    session.statusChanged.connect((_, status) => this.onStatus(status));
    void session.ready.then(() => this.connect('ready'));
    panel.context.saveState.connect((_, state) => {
      if (state === 'started') {
        this.saveToMetadata();
      }
    });
    panel.content.model?.cells.changed.connect(() => this.scheduleDraw());
    this.timer = window.setInterval(() => this.tick(), 1000);
    panel.disposed.connect(() => this.dispose());
    this.scheduleDraw();
  }

  /** The HTML of the plan's views, as the kernel last sent it */
  panelHtml = '';
  /** messages received (the tests read it) */
  received = 0;
  /** what happened to the link, last first dropped (the tests print it when a badge is wrong) */
  readonly trace: string[] = [];

  /** whether the badges show a kernel's state (the kernel's nbsteps answered) */
  get live(): boolean {
    return this.stateKernel !== '';
  }

  /** whether the state held is the kernel's whole state (a full state and every delta since) */
  get complete(): boolean {
    return this.live && this.whole;
  }

  requestPanel(): void {
    this.wantPanel = true;
    if (this.comm && !this.comm.isDisposed) {
      this.comm.send({ type: 'panel' });
    } else {
      this.ask('panel'); // (JupyterLab disposes the comms of a kernel it restarts)
    }
  }

  draw(): void {
    this.drawPending = false;
    const notebook = this.panel.content;
    const show = this.options.badges();
    for (const cell of notebook.widgets) {
      this.drawCell(cell, show);
    }
  }

  dispose(): void {
    window.clearInterval(this.timer);
    this.kernel?.iopubMessage.disconnect(this.onIopub, this);
    this.comm?.dispose();
    this.comm = null;
  }

  /**
   * The server restarted kernel *kernelId* (from any client: another tab, a script, the
   * REST API). The server tells the other clients nothing on the kernel's channels, and the
   * new process's first messages can be gone before they reach this tab, so the event bus
   * says it. The event can come late (after the new process's state), so it drops nothing:
   * the tab asks the kernel, whose reply (a status of the new process) drops an old state.
   */
  kernelRestarted(kernelId: string): void {
    if (this.kernel && this.kernel.id === kernelId) {
      this.log('restart event');
      this.restarting = false;
      this.ask('restart event');
    }
  }

  private log(what: string): void {
    const t = (performance.now() / 1000).toFixed(3);
    this.trace.push(`${t} ${what}`);
    if (this.trace.length > 300) {
      this.trace.splice(0, this.trace.length - 300);
    }
  }

  /** The panel's kernel connection is (maybe) another one: follow it, ask for its state. */
  private connect(why: string): void {
    const kernel = this.panel.sessionContext.session?.kernel || null;
    if (kernel !== this.kernel) {
      // another kernel (or none): what this tab knows is of the kernel it leaves
      this.kernel?.iopubMessage.disconnect(this.onIopub, this);
      this.kernel = kernel;
      this.comm = null;
      this.forget(`kernel ${kernel ? kernel.id.slice(0, 8) : 'none'} (${why})`);
      if (!kernel) {
        return;
      }
      // nbsteps' messages on any comm: every tab reads the kernel's IOPub, so a tab whose own
      // comm waits for a busy kernel (reloaded mid-run) still gets the state sent to the others
      kernel.iopubMessage.connect(this.onIopub, this);
      // the kernel opens a comm when %load_ext nbsteps runs after this tab connected
      kernel.registerCommTarget(TARGET, (comm: Kernel.IComm) => this.attach(comm));
    }
    this.ask(why);
  }

  /**
   * Ask the kernel for its whole state: a new comm, whose opening the kernel answers with it
   * (after the cell it runs, if any). A comm message could go to a subshell the kernel no longer
   * has (JupyterLab keeps a kernel's subshell ids across a restart it did not make).
   */
  private ask(why: string): void {
    const kernel = this.kernel;
    if (!kernel || kernel.isDisposed) {
      return;
    }
    this.askedAt = Date.now();
    this.log(`ask (${why})`);
    try {
      const comm = kernel.createComm(TARGET);
      this.attach(comm);
      comm.open({ type: 'state' });
    } catch (e) {
      console.warn('nbsteps: cannot ask the kernel for its state', e);
    }
  }

  private attach(comm: Kernel.IComm): void {
    if (this.comm && this.comm !== comm) {
      this.comm.dispose();
    }
    this.comm = comm;
    comm.onClose = () => {
      // the kernel has no nbsteps (a comm it refused) or closed it: the state stays until
      // a message of another process (or a dead kernel) says it is gone
      this.log(`comm ${comm.commId.slice(0, 8)} closed`);
      if (this.comm === comm) {
        this.comm = null;
      }
    };
    if (this.wantPanel) {
      comm.send({ type: 'panel' });
    }
  }

  /** Drop the state held: it is not the current kernel's. */
  private forget(why: string): void {
    this.log(`forget: ${why}`);
    this.stateKernel = '';
    this.seq = 0;
    this.whole = false;
    this.cells = {};
    this.unbound = {};
    this.scheduleDraw();
    this.options.onPanel();
  }

  private onStatus(status: string): void {
    this.log(`status ${status}`);
    if (status === 'dead') {
      if (this.live) {
        this.forget('kernel dead');
      }
      this.restarting = true;
    } else if (['restarting', 'autorestarting', 'starting', 'unknown'].includes(status)) {
      // maybe a new process (or a lost connection): ask at the next idle; what decides
      // whether the state held is gone is which process answers (onIopub)
      this.restarting = true;
    } else if (status === 'idle') {
      if (this.restarting) {
        this.restarting = false;
        this.ask('idle after a restart');
      } else if (this.live && !this.whole && Date.now() - this.askedAt > ASK_AGAIN_MS) {
        this.ask('idle without the whole state');
      }
    }
  }

  private onIopub(_: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    const type = msg.header.msg_type;
    // each kernel process signs its messages with a session of its own. A status that
    // answers a request (it has a parent) comes from the kernel process (the server's own
    // 'restarting' and 'dead' have none): a session other than the state's is a restarted
    // kernel, even when the restart was too quick to show a 'restarting' status, and
    // whatever order the restart's signals came in
    const origin = msg.header.session;
    const parent = msg.parent_header as { msg_id?: string };
    if (type === 'status' && origin && parent && parent.msg_id) {
      if (this.stateKernel && origin !== this.stateKernel) {
        this.forget(`status of another process ${origin.slice(0, 8)}`);
      }
    }
    if (type === 'comm_msg' || type === 'comm_open') {
      const data = (msg as KernelMessage.ICommMsgMsg).content.data as { [key: string]: unknown };
      if (data && data.nbsteps === PROTOCOL) {
        this.onMessage(data as unknown as IStateMsg | IPanelMsg, String(data.kernel || origin));
      } else if (data && typeof data.nbsteps === 'number' && !this.warned) {
        this.warned = true;
        console.warn(`nbsteps: the kernel speaks protocol ${data.nbsteps}, this extension ${PROTOCOL}`);
      }
    }
  }

  private onMessage(data: IStateMsg | IPanelMsg | { type: string }, kernel: string): void {
    this.received++;
    if (data.type === 'state') {
      const msg = data as IStateMsg;
      this.offset = Date.now() / 1000 - msg.now;
      const steps = [...Object.values(msg.cells || {}), ...Object.values(msg.unbound || {})].map(
        st => `${st.step}:${st.status}`
      );
      this.log(`state ${msg.full ? 'full' : 'delta'} #${msg.seq} of ${kernel.slice(0, 8)} ${steps.join(' ')}`);
      const was = this.live;
      if (kernel !== this.stateKernel && this.live) {
        this.forget(`state of another process ${kernel.slice(0, 8)}`);
      }
      if (msg.full) {
        this.cells = {};
        this.unbound = {};
        this.whole = true;
      } else if (kernel === this.stateKernel && msg.seq <= this.seq) {
        return; // older than the state held (a whole state sent after it was read first)
      } else if (kernel !== this.stateKernel || msg.seq !== this.seq + 1) {
        // a delta on top of a state this tab does not have: keep it, ask for the whole
        this.whole = false;
        if (Date.now() - this.askedAt > ASK_AGAIN_MS) {
          this.ask(`delta #${msg.seq} after #${this.seq}`);
        }
      }
      this.stateKernel = kernel;
      this.seq = msg.seq;
      for (const [cid, st] of Object.entries(msg.cells || {})) {
        for (const [other, old] of Object.entries(this.cells)) {
          if (old.step === st.step && other !== cid) {
            delete this.cells[other];
          }
        }
        delete this.unbound[st.step];
        this.cells[cid] = st;
      }
      for (const [name, st] of Object.entries(msg.unbound || {})) {
        this.unbound[name] = st;
      }
      this.scheduleDraw();
      if (!was) {
        this.options.onPanel();
      }
    } else if (data.type === 'panel') {
      this.panelHtml = (data as IPanelMsg).html;
      this.options.onPanel();
    }
  }

  /** The live state of a cell: by its id, else by the name in its source. */
  private liveState(cell: Cell): IStepState | null {
    const byId = this.cells[cell.model.id];
    if (byId) {
      return byId;
    }
    const name = stepOfSource(cell.model.sharedModel.getSource());
    return name ? this.unbound[name] || null : null;
  }

  private drawCell(cell: Cell, show: boolean): void {
    let badge = cell.node.querySelector(':scope > .nbsteps-badge') as HTMLElement | null;
    const isStep = cell.model.type === 'code' && stepOfSource(cell.model.sharedModel.getSource()) !== null;
    let st: IStepState | null = null;
    if (show && (isStep || this.cells[cell.model.id])) {
      st = this.live ? this.liveState(cell) : null;
      if (!st && !this.complete) {
        // no kernel state (or not the whole of it yet: a step missing may be one not told)
        const saved = cell.model.getMetadata(META) as IStepState | undefined;
        st = saved && saved.saved_at ? saved : null;
      }
      if (!st && this.complete && isStep) {
        const name = stepOfSource(cell.model.sharedModel.getSource()) || '';
        st = {
          step: name,
          status: 'unregistered',
          started: null,
          finished: null,
          duration: null,
          origin: '',
          stale: false,
          stale_reason: '',
          attempts: 0,
          error: '',
          confirming: '',
          line: 'run the cell to register the step'
        };
      }
    }
    if (!st) {
      badge?.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement('div');
      badge.className = 'nbsteps-badge';
      badge.setAttribute('role', 'status');
      const dot = document.createElement('span');
      dot.className = 'nbsteps-badge-dot';
      dot.setAttribute('aria-hidden', 'true');
      const text = document.createElement('span');
      text.className = 'nbsteps-badge-text';
      badge.append(dot, text);
      const input = cell.node.querySelector(':scope > .jp-Cell-inputWrapper');
      cell.node.insertBefore(badge, input);
    }
    const elapsed =
      st.started !== null && (st.status === 'running' || st.status === 'retrying')
        ? Date.now() / 1000 - this.offset - st.started
        : null;
    const [text, words] = describe(st, elapsed);
    badge.dataset.status = st.status;
    badge.dataset.stale = String(!!st.stale);
    badge.dataset.origin = st.origin || '';
    badge.dataset.step = st.step;
    badge.dataset.source = st.saved_at ? 'saved' : 'kernel';
    badge.setAttribute('aria-label', `nbsteps ${words}`);
    badge.title = st.line && !st.saved_at ? `${words}\n${st.line}` : words;
    (badge.querySelector('.nbsteps-badge-text') as HTMLElement).textContent = text;
  }

  private tick(): void {
    const running = Object.values(this.cells).some(s => s.status === 'running' || s.status === 'retrying');
    if (running) {
      this.draw();
    }
  }

  private scheduleDraw(): void {
    if (!this.drawPending) {
      this.drawPending = true;
      requestAnimationFrame(() => this.draw());
      window.setTimeout(() => this.drawPending && this.draw(), 200); // hidden tabs get no frames
    }
  }

  /** Just before a save: each step cell's live state goes into its metadata. */
  private saveToMetadata(): void {
    if (!this.live) {
      return;
    }
    const now = new Date().toISOString();
    for (const cell of this.panel.content.widgets) {
      const st = this.liveState(cell);
      if (st && cell.model.type === 'code') {
        const saved: IStepState = { ...st, saved_at: now };
        delete saved.cell_id;
        cell.model.setMetadata(META, saved);
      }
    }
  }

  private comm: Kernel.IComm | null = null;
  private kernel: Kernel.IKernelConnection | null = null;
  private cells: { [cellId: string]: IStepState } = {};
  private unbound: { [step: string]: IStepState } = {};
  private offset = 0;
  private drawPending = false;
  private restarting = false;
  /** the kernel process whose state this tab holds ('' none), and its last message's seq */
  private stateKernel = '';
  private seq = 0;
  private whole = false;
  private askedAt = 0;
  private warned = false;
  private wantPanel = false;
  private timer: number;
}

/** The right sidebar: the plan of the current notebook (graph, timeline, table, step logs). */
class PlanPanel extends Widget {
  constructor(private readonly rendermime: IRenderMimeRegistry) {
    super();
    this.id = 'nbsteps-plan';
    this.addClass('nbsteps-panel');
    this.title.caption = 'nbsteps plan';
    this.title.label = 'nbsteps';
    this.head = document.createElement('div');
    this.head.className = 'nbsteps-panel-head';
    this.body = document.createElement('div');
    this.body.className = 'nbsteps-panel-body';
    this.node.append(this.head, this.body);
  }

  show_(steps: NotebookSteps | null): void {
    this.steps = steps;
    if (!steps) {
      this.head.textContent = 'nbsteps: no notebook';
      this.body.textContent = '';
      return;
    }
    this.head.textContent = `nbsteps plan of ${steps.panel.context.path}`;
    if (!this.isVisible) {
      return;
    }
    if (!steps.live) {
      this.body.textContent = 'No kernel with nbsteps loaded (%load_ext nbsteps).';
      return;
    }
    if (!steps.panelHtml) {
      this.body.textContent = 'asking the kernel…';
      steps.requestPanel();
      return;
    }
    void this.render(steps.panelHtml);
  }

  get current(): NotebookSteps | null {
    return this.steps;
  }

  /** emitted when the panel becomes visible: the kernel is asked for the views then */
  readonly shown = new Signal<this, void>(this);

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.shown.emit();
  }

  private async render(html: string): Promise<void> {
    if (html === this.rendered) {
      return;
    }
    this.rendered = html;
    // rendered as an untrusted output is: sanitized, no script runs
    const model = this.rendermime.createModel({ data: { 'text/html': html }, trusted: false });
    const renderer = this.rendermime.createRenderer('text/html');
    await renderer.renderModel(model);
    // the step logs the user opened stay open (the sanitizer keeps no data- attributes: by summary)
    const summary = (d: Element) => d.querySelector('summary')?.textContent || '';
    const open = new Set(Array.from(this.body.querySelectorAll('details[open]')).map(summary));
    this.body.replaceChildren(renderer.node);
    for (const d of Array.from(this.body.querySelectorAll('details'))) {
      if (open.has(summary(d))) {
        (d as HTMLDetailsElement).open = true;
      }
    }
  }

  private head: HTMLElement;
  private body: HTMLElement;
  private steps: NotebookSteps | null = null;
  private rendered = '';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'nbsteps: step badges on %%step cells and the plan in a side panel, from the kernel',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    settingRegistry: ISettingRegistry | null
  ) => {
    let badges = true;
    const all = new Map<NotebookPanel, NotebookSteps>();
    const side = new PlanPanel(rendermime);
    app.shell.add(side, 'right', { rank: 900 });
    const refreshSide = () => {
      const current = tracker.currentWidget;
      side.show_(current ? all.get(current) || null : null);
    };
    tracker.widgetAdded.connect((_, panel) => {
      const steps = new NotebookSteps(panel, {
        badges: () => badges,
        onPanel: () => {
          if (side.current === steps) {
            refreshSide();
          }
        }
      });
      all.set(panel, steps);
      panel.disposed.connect(() => all.delete(panel));
      refreshSide();
    });
    // a kernel restarted through the server (jupyter_server's kernel_actions events)
    app.serviceManager.events.stream.connect((_, event) => {
      if (event.schema_id === KERNEL_ACTIONS && event.action === 'restart' && event.status === 'success') {
        all.forEach(steps => steps.kernelRestarted(String(event.kernel_id)));
      }
    });
    tracker.currentChanged.connect(refreshSide);
    side.shown.connect(refreshSide);
    (window as unknown as { nbsteps: unknown }).nbsteps = { all, side, refreshSide };
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(settings => {
        const apply = () => {
          badges = settings.get('badges').composite !== false;
          all.forEach(steps => steps.draw());
        };
        settings.changed.connect(apply);
        apply();
      });
    }
  }
};

export default plugin;
