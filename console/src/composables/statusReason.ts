// A device's or channel's status reason in the console's language.
//
// The platform records why a device or channel is offline in English (the API's and the
// logs' language, see media/ingest.py, gb28181/registrar.py, gb28181/directory.py); the
// console shows the reasons it knows in its own language and any other as the platform
// wrote it (a camera's own error text, say).

type Translate = (key: string, args?: Record<string, unknown>) => string

interface Rule {
  pattern: RegExp
  key: string
  /** Names of the pattern's groups, in order; a group named `inner` is itself a reason. */
  args?: string[]
}

const RULES: Rule[] = [
  { pattern: /^not yet connected$/, key: 'notConnected' },
  { pattern: /^no data from the camera \(timed out\)$/, key: 'timedOut' },
  { pattern: /^authentication failed$/, key: 'authFailed' },
  { pattern: /^stream not found on the camera$/, key: 'notFound' },
  { pattern: /^connection refused$/, key: 'refused' },
  { pattern: /^the camera ended the stream$/, key: 'ended' },
  { pattern: /^stopped$/, key: 'stopped' },
  {
    pattern: /^media worker exited unexpectedly \(code (-?\d+)\); restarting$/,
    key: 'workerExited',
    args: ['code'],
  },
  { pattern: /^registration expired$/, key: 'registrationExpired' },
  { pattern: /^unregistered$/, key: 'unregistered' },
  { pattern: /^no keepalive for (\d+) s \((\d+) missed\)$/, key: 'noKeepalive', args: ['seconds', 'missed'] },
  { pattern: /^reported offline by the device$/, key: 'reportedOffline' },
  { pattern: /^video lost \(reported by the device\)$/, key: 'videoLost' },
  { pattern: /^faulty \(reported by the device\)$/, key: 'faulty' },
  { pattern: /^reported faulty by the device$/, key: 'faulty' },
  { pattern: /^removed by the device \(kept: legal hold\)$/, key: 'removedHeld' },
  { pattern: /^device offline: (.*)$/s, key: 'deviceOffline', args: ['inner'] },
  { pattern: /^no video from the device: (.*)$/s, key: 'noVideo', args: ['inner'] },
]

/** The reason to show; '' for none. Unknown reasons come back unchanged. */
export function statusReason(reason: string | null | undefined, t: Translate): string {
  if (!reason) return ''
  for (const rule of RULES) {
    const m = rule.pattern.exec(reason)
    if (!m) continue
    const args: Record<string, string> = {}
    ;(rule.args ?? []).forEach((name, i) => {
      const value = m[i + 1] ?? ''
      args[name] = name === 'inner' ? statusReason(value, t) : value
    })
    return t(`statusReason.${rule.key}`, args)
  }
  return reason
}
