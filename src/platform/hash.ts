import { hash } from 'node:crypto';

/**
 * SHA-256 of a text (UTF-8), in hex: how one-time tokens and secrets are stored and looked
 * up, and the ledger's hash chains. One-shot `crypto.hash`: no Hash object per call (half
 * the time of createHash().update().digest() here, and nothing for the collector to track).
 */
export const sha256Hex = (text: string): string => hash('sha256', text, 'hex');
