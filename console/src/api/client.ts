// The public HTTP API (/api/v1): every call the console makes goes through here.

export const API = '/api/v1'

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown }
}

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: unknown
  /** Seconds, from Retry-After or the error's details (423 locked). */
  readonly retryAfter: number | null

  constructor(status: number, code: string, message: string, details: unknown, retryAfter: number | null) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
    this.retryAfter = retryAfter
  }
}

export interface Page<T> {
  items: T[]
  total: number
  offset: number
  limit: number
}

export interface UserView {
  id: number
  username: string
  display_name: string
  roles: string[]
}

export interface LoginResult {
  access_token: string
  token_type: string
  expires_at: string
  user: UserView
}

export interface Org {
  id: string
  name: string
  level: string
  parent: string | null
}

export interface Channel {
  id: string
  device_id: string
  name: string
  address: string | null
  org: string | null
  status: string
  status_reason: string | null
  ptz: boolean
}

type Query = Record<string, string | number | undefined | null>

let token: string | null = null
let unauthorized: () => void = () => {}

export function setToken(value: string | null): void {
  token = value
}

/** Called on any 401 from the API once logged in (expired or revoked token). */
export function onUnauthorized(handler: () => void): void {
  unauthorized = handler
}

function url(path: string, query?: Query): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  }
  const s = q.toString()
  return `${API}${path}${s ? `?${s}` : ''}`
}

async function toError(res: Response): Promise<ApiError> {
  let body: Partial<ErrorBody> = {}
  try {
    body = (await res.json()) as ErrorBody
  } catch {
    // not JSON (a proxy's page): keep the status
  }
  const details = body.error?.details
  let retryAfter: number | null = null
  const header = res.headers.get('Retry-After')
  if (header && /^\d+$/.test(header)) retryAfter = Number(header)
  else if (details && typeof details === 'object' && 'retry_after' in details) {
    retryAfter = Number((details as { retry_after: unknown }).retry_after) || null
  }
  return new ApiError(res.status, body.error?.code ?? 'error', body.error?.message ?? res.statusText, details, retryAfter)
}

export async function request<T>(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; signal?: AbortSignal; anonymous?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token && !opts.anonymous) headers.Authorization = `Bearer ${token}`
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(url(path, opts.query), {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  })
  if (!res.ok) {
    const err = await toError(res)
    if (res.status === 401 && !opts.anonymous) unauthorized()
    throw err
  }
  if (res.status === 204) return undefined as T
  return (await res.json()) as T
}

/** A raw response (media, files) with the caller's token; a non-2xx answer throws ApiError. */
export async function fetchRaw(path: string, query?: Query, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = {}
  if (token) headers.Authorization = `Bearer ${token}`
  const res = await fetch(url(path, query), { headers, signal })
  if (!res.ok) {
    const err = await toError(res)
    if (res.status === 401) unauthorized()
    throw err
  }
  return res
}

export const get = <T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> =>
  request<T>('GET', path, { query, signal })

/** Every page of a list (the API gives at most 1000 a page). */
export async function getAll<T>(path: string, query: Query = {}, max = 20000): Promise<T[]> {
  const out: T[] = []
  for (let offset = 0; offset < max; ) {
    const page = await get<Page<T>>(path, { ...query, offset, limit: 1000 })
    out.push(...page.items)
    offset += page.items.length
    if (!page.items.length || offset >= page.total) break
  }
  return out
}

export function liveUrl(channelId: string): string {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws'
  return `${proto}://${location.host}${API}/channels/${encodeURIComponent(channelId)}/live?token=${encodeURIComponent(token ?? '')}`
}

// --- recordings, playback, exports, storage ------------------------------------------------

export interface Gap {
  start: string
  end: string
  seconds: number
}

export interface GapReport {
  channel_id: string
  start: string
  /** The end asked for, or now if that is earlier. */
  end: string
  tolerance_seconds: number
  recorded_seconds: number
  gaps: Gap[]
}

export interface Span {
  start: string
  end: string
  /** Seconds into the playback stream where the span begins. */
  offset: number
}

export interface Timeline {
  channel_id: string
  start: string
  end: string
  first_frame: string
  spans: Span[]
  gaps: { start: string; end: string }[]
}

/** The API's minimum length of an export's reason (media/export.py MIN_REASON). */
export const MIN_REASON = 4

/** platform: from the platform's recordings; device: downloaded from a GB/T 28181 device. */
export type ExportSource = 'platform' | 'device'
/** partial: the device sent less than the range (or the download was cancelled). */
export type ExportStatus = 'running' | 'done' | 'partial' | 'failed'

export interface ExportView {
  id: number
  channel_id: string
  start: string
  end: string
  bytes: number
  /** Empty while the export runs. */
  sha256: string
  /** Where to fetch the file; null until it is finished (done or partial). */
  url: string | null
  source: ExportSource
  status: ExportStatus
  /** 0 … 1 */
  progress: number
  error: string | null
  reason: string
  created_by: string
  created_at: string
  finished_at: string | null
}

/** GB/T 28181 downloads: the device sends at 1 … 32 times real time (the API's default 4). */
export const DOWNLOAD_SPEEDS = [1, 2, 4, 8, 16]
export const DEFAULT_DOWNLOAD_SPEED = 4

export const listExports = (limit = 100): Promise<ExportView[]> => get<ExportView[]>('/exports', { limit })
export const getExport = (id: number): Promise<ExportView> => get<ExportView>(`/exports/${id}`)
export const cancelExport = (id: number): Promise<ExportView> => request<ExportView>('POST', `/exports/${id}/cancel`)
/** POST /channels/{id}/device-download: a range recorded on the device, as a job (202, running). */
export const startDeviceDownload = (
  channelId: string,
  start: number,
  end: number,
  reason: string,
  speed: number,
): Promise<ExportView> =>
  request<ExportView>('POST', `/channels/${encodeURIComponent(channelId)}/device-download`, {
    body: { start: isoLocal(start), end: isoLocal(end), reason, speed },
  })

/** A finished export's file, fetched with the caller's token; its name from the server. */
export async function fetchExportFile(view: ExportView): Promise<{ blob: Blob; name: string }> {
  const res = await fetchRaw(`/exports/${view.id}/file`)
  const blob = await res.blob()
  const name =
    /filename="?([^";]+)"?/.exec(res.headers.get('Content-Disposition') ?? '')?.[1] ?? `${view.channel_id}-export-${view.id}.mp4`
  return { blob, name }
}

export interface TierView {
  index: number
  path: string
  max_age_days: number | null
  max_bytes: number
  bytes: number
  segments: number
  free_bytes: number | null
  total_bytes: number | null
}

export interface SweepReport {
  started_at: string
  finished_at: string | null
  moved: number
  deleted: number
  deleted_bytes: number
  held: number
}

export interface RepairReport {
  started_at: string
  finished_at: string | null
  files_checked: number
  indexed: number
  missing: number
  damaged: number
}

export interface StorageView {
  retention_days: number
  quota_bytes: number
  min_free_bytes: number
  bytes: number
  segments: number
  active_holds: number
  tiers: TierView[]
  last_sweep: SweepReport | null
  last_repair: RepairReport | null
}

/** The API's error as one line for the page. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.status} ${e.code})`
  if (e instanceof Error) return e.message
  return String(e)
}

// --- GB/T 28181: recordings kept on the device (api/routers/device_records.py) -------------

export interface DeviceRecord {
  start: string | null
  end: string | null
  name: string | null
  /** time, alarm, manual */
  type: string | null
  file_size: number | null
}

export interface DeviceRecordList {
  channel_id: string
  items: DeviceRecord[]
  /** False when the device's answer lacked pages. */
  complete: boolean
}

export interface DevicePlaybackSession {
  session: string
  /** Single-use ws:// address of the stream (the live protocol); null when workers serve none. */
  url: string | null
  expires_at: string | null
}

export type DevicePlaybackControl =
  | { action: 'pause' | 'resume' }
  | { action: 'speed'; value: number }
  | { action: 'seek'; value: number }

/** ISO 8601 with this browser's UTC offset (a device searches in its local time). */
export function isoLocal(ms: number): string {
  const d = new Date(ms)
  const p = (n: number): string => String(Math.floor(Math.abs(n))).padStart(2, '0')
  const off = -d.getTimezoneOffset()
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${p(off / 60)}:${p(off % 60)}`
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}` +
    `T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${zone}`
  )
}

export const searchDeviceRecords = (channelId: string, start: number, end: number, signal?: AbortSignal): Promise<DeviceRecordList> =>
  get<DeviceRecordList>(`/channels/${encodeURIComponent(channelId)}/device-records`, { start: isoLocal(start), end: isoLocal(end) }, signal)
export const startDevicePlayback = (channelId: string, start: number, end: number): Promise<DevicePlaybackSession> =>
  request<DevicePlaybackSession>('POST', `/channels/${encodeURIComponent(channelId)}/device-playback`, {
    body: { start: isoLocal(start), end: isoLocal(end) },
  })
export const controlDevicePlayback = (session: string, body: DevicePlaybackControl): Promise<void> =>
  request<void>('POST', `/device-playback/${encodeURIComponent(session)}/control`, { body })
export const endDevicePlayback = (session: string): Promise<void> =>
  request<void>('DELETE', `/device-playback/${encodeURIComponent(session)}`)

// --- administration: devices, channels, register, users, roles, audit ---------------------

/** GET /auth/me: the caller, its roles, area and permissions. */
export interface Me {
  id: number
  username: string
  display_name: string
  roles: string[]
  permissions: string[]
}

export interface DeviceView {
  id: string
  name: string
  kind: string
  protocol: string
  /** Without credentials. */
  url: string | null
  username: string | null
  has_password: boolean
  transport: string
  /** GB/T 28181 devices: udp, tcp-passive or tcp-active; null: the platform default. */
  media_transport?: string | null
  manufacturer: string | null
  model: string | null
  firmware: string | null
  ip: string | null
  port: number | null
  org: string | null
  status: string
  status_reason: string | null
  enabled: boolean
  channel_count: number
  created_at: string
  updated_at: string
}

/** POST /devices (create) and PATCH /devices/{id} (update) take these fields. */
export interface DeviceForm {
  id?: string
  name?: string
  kind?: string
  protocol?: string
  url?: string | null
  username?: string | null
  password?: string | null
  transport?: string
  /** GB/T 28181 devices only: udp, tcp-passive, tcp-active; null: the platform default. */
  media_transport?: string | null
  ip?: string | null
  port?: number | null
  org?: string | null
  enabled?: boolean
}

export interface ChannelView extends Channel {
  remote_id: string | null
  longitude: number | null
  latitude: number | null
  direction: number | null
  point_class: number
  ptz_type: string
  stream_url: string | null
  grid: string | null
  enabled: boolean
}

export interface ChannelForm {
  name?: string
  org?: string | null
  ptz_type?: string
  longitude?: number | null
  latitude?: number | null
  address?: string | null
}

export interface ImportRowError {
  /** Line in the sheet (the header is line 1). */
  row: number
  column: string | null
  message: string
}

export interface ImportResult {
  rows: number
  devices_created: number
  channels_created: number
  channels_updated: number
  ignored_columns: string[]
}

export interface ScopeSpec {
  all: boolean
  orgs: string[]
  channels: string[]
}

export interface AccountView {
  id: number
  username: string
  display_name: string
  enabled: boolean
  roles: string[]
  scope: ScopeSpec
  locked_until: string | null
  last_login_at: string | null
  created_at: string
}

export interface AccountCreated extends AccountView {
  /** Only when the platform generated it; shown this once. */
  generated_password: string | null
}

export interface AccountForm {
  username?: string
  password?: string | null
  display_name?: string
  roles?: string[]
  scope?: ScopeSpec
  enabled?: boolean
  unlock?: boolean
}

export interface RoleView {
  name: string
  title: string
  builtin: boolean
  permissions: string[]
}

export interface AuditRecord {
  seq: number
  at: string
  actor: string
  action: string
  target: string
  outcome: string
  source: string
  reason: string
  detail: Record<string, unknown>
  hash: string
}

export interface AuditQuery {
  actor?: string
  action?: string
  target?: string
  outcome?: string
  source?: string
  since?: string
  until?: string
  offset: number
  limit: number
}

export interface VerifyResult {
  ok: boolean
  checked: number
  first_bad_seq: number | null
  problem: string
}

const enc = encodeURIComponent

export const getMe = (): Promise<Me> => get<Me>('/auth/me')

export const listDevices = (query: Query): Promise<Page<DeviceView>> => get<Page<DeviceView>>('/devices', query)
export const createDevice = (body: DeviceForm): Promise<DeviceView> => request<DeviceView>('POST', '/devices', { body })
export const updateDevice = (id: string, body: DeviceForm): Promise<DeviceView> =>
  request<DeviceView>('PATCH', `/devices/${enc(id)}`, { body })
export const deleteDevice = (id: string): Promise<void> => request<void>('DELETE', `/devices/${enc(id)}`)

export const listDeviceChannels = (deviceId: string): Promise<ChannelView[]> =>
  getAll<ChannelView>('/channels', { device_id: deviceId })
export const updateChannel = (id: string, body: ChannelForm): Promise<ChannelView> =>
  request<ChannelView>('PATCH', `/channels/${enc(id)}`, { body })

/** POST /registry/import: all rows or none; a 422's details are ImportRowError[]. */
export async function importRegister(file: File): Promise<ImportResult> {
  const form = new FormData()
  form.append('file', file, file.name)
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  const res = await fetch(url('/registry/import'), { method: 'POST', headers, body: form })
  if (!res.ok) {
    const err = await toError(res)
    if (res.status === 401) unauthorized()
    throw err
  }
  return (await res.json()) as ImportResult
}

/** The row errors of a failed import, if that is what the error carries. */
export function importRowErrors(e: unknown): ImportRowError[] {
  if (!(e instanceof ApiError) || !Array.isArray(e.details)) return []
  return (e.details as unknown[]).filter(
    (d): d is ImportRowError => typeof d === 'object' && d !== null && 'row' in d && 'message' in d,
  )
}

export async function exportRegister(format: 'csv' | 'xlsx', lang: 'zh' | 'en'): Promise<Blob> {
  const res = await fetchRaw('/registry/export', { format, lang })
  return res.blob()
}

export const listAccounts = (query: Query): Promise<Page<AccountView>> => get<Page<AccountView>>('/users', query)
export const createAccount = (body: AccountForm): Promise<AccountCreated> =>
  request<AccountCreated>('POST', '/users', { body })
export const updateAccount = (id: number, body: AccountForm): Promise<AccountView> =>
  request<AccountView>('PATCH', `/users/${id}`, { body })
export const deleteAccount = (id: number): Promise<void> => request<void>('DELETE', `/users/${id}`)

export const listRoles = (): Promise<RoleView[]> => get<RoleView[]>('/roles')
export const listPermissions = (): Promise<string[]> => get<string[]>('/permissions')
export const createRole = (body: { name: string; title: string; permissions: string[] }): Promise<RoleView> =>
  request<RoleView>('POST', '/roles', { body })
export const updateRole = (name: string, body: { title?: string; permissions?: string[] }): Promise<RoleView> =>
  request<RoleView>('PATCH', `/roles/${enc(name)}`, { body })
export const deleteRole = (name: string): Promise<void> => request<void>('DELETE', `/roles/${enc(name)}`)

export const listAudit = (query: AuditQuery): Promise<Page<AuditRecord>> =>
  get<Page<AuditRecord>>('/audit', { ...query })
export const verifyAudit = (): Promise<VerifyResult> => get<VerifyResult>('/audit/verify')

// --- GB/T 28181 device control (api/routers/device_control.py) ------------------------------

/** reboot needs registry.write besides device.control; record/stop_record take a channel. */
export type DeviceAction = 'reboot' | 'guard' | 'unguard' | 'record' | 'stop_record'

export interface DeviceControlResult {
  device_id: string
  channel_id: string | null
  action: DeviceAction
  /** What the device answered (OK); an ERROR comes back as a 422 device_error instead. */
  result: string
}

export const getDevice = (id: string): Promise<DeviceView> => get<DeviceView>(`/devices/${enc(id)}`)
export const controlDevice = (deviceId: string, action: DeviceAction, channelId?: string): Promise<DeviceControlResult> =>
  request<DeviceControlResult>('POST', `/devices/${enc(deviceId)}/control`, {
    body: channelId ? { action, channel_id: channelId } : { action },
  })
