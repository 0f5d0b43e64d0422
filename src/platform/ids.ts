import { v7, validate, version } from 'uuid';

/** A new time-ordered id (UUIDv7): sorts by creation time, so it doubles as a cursor. */
export const newId = (): string => v7();

export const isUuid = (value: string): boolean => validate(value);

export const isUuidV7 = (value: string): boolean => validate(value) && version(value) === 7;
