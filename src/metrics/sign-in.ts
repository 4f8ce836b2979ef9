import { Counter, type Registry } from 'prom-client';
import type { SignIn, SignInStep } from '../sign-in/sign-in.ts';

/**
 * Sign-ins by step and outcome, counted around the one sign-in both doors use
 * (src/sign-in/sign-in.ts), which stays unaware of metrics. A refusal with 429 is the throttle's
 * (the username or the address is paused); every other refusal is a wrong password or code.
 */

type Outcome = 'signed_in' | 'code_needed' | 'refused_wrong' | 'refused_throttled';

function outcomeOf(step: SignInStep): Outcome {
  if (step.kind !== 'refused') return step.kind;
  return step.status === 429 ? 'refused_throttled' : 'refused_wrong';
}

export function countSignIns(signIn: SignIn, registry: Registry, throttleRefusals: Counter<'limit'>): SignIn {
  const outcomes = new Counter({
    name: 'passbook_sign_ins_total',
    help: 'Sign-in steps (password, code) by outcome: signed_in, code_needed, refused_wrong, refused_throttled.',
    labelNames: ['step', 'outcome'],
    registers: [registry],
  });
  const counted = (step: 'password' | 'code', result: SignInStep): SignInStep => {
    const outcome = outcomeOf(result);
    outcomes.inc({ step, outcome });
    if (outcome === 'refused_throttled') throttleRefusals.inc({ limit: 'sign_in' });
    return result;
  };
  return {
    async withPassword(attempt) {
      return counted('password', await signIn.withPassword(attempt));
    },
    async withCode(attempt) {
      return counted('code', await signIn.withCode(attempt));
    },
    hasSecondFactor: (customerId) => signIn.hasSecondFactor(customerId),
  };
}
