export * from './commands.ts';
export * from './messages.ts';
export * from './responder.ts';
export * from './verify.ts';
