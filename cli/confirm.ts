/**
 * Confirmation of destructive commands (forget, prune). The rule: `--yes` proceeds; otherwise, on a
 * terminal (stdin and stderr), the question is asked and only "y" or "yes" proceeds; without a terminal
 * (cron, scripts, the daemon's children) the command refuses with exit code 2 and says to pass --yes.
 * Nothing is asked when nothing would be removed.
 */
import { createInterface } from 'node:readline'
import { CliError, EXIT } from './common.js'

export async function confirm(a: { yes?: boolean }, question: string): Promise<void> {
  if (a.yes) return
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new CliError(`${question.replace(/\?$/, '')}: refused without confirmation, as stdin is not a terminal; pass --yes (or --dry-run to see what would happen)`, EXIT.usage)
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve))
  rl.close()
  if (!/^(y|yes)$/i.test(answer.trim())) throw new CliError('not confirmed: nothing was changed', EXIT.failure)
}
