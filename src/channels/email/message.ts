// The one message both e-mail providers send: the sender's from and reply-to (the type's own, else the
// provider's), the recipient, subject, HTML, text and the content's headers, and a Message-ID made of the
// delivery id. SMTP hands it to nodemailer's transport; SES composes the same options into raw MIME, so the
// two carry the same headers.
import type Mail from 'nodemailer/lib/mailer/index.js';
import type { DeliveryTask } from '../../delivery/provider.js';

export interface EmailSender {
  /** `"Name" <address>` or an address. */
  from: string;
  replyTo?: string | undefined;
}

/** The message's options, or null when the task is not an e-mail. */
export function mailOptions(task: DeliveryTask, sender: EmailSender): Mail.Options | null {
  const { destination, content } = task;
  if (destination.channel !== 'email' || content.channel !== 'email') return null;
  const replyTo = content.replyTo ?? sender.replyTo;
  return {
    from: content.from ?? sender.from,
    ...(replyTo ? { replyTo } : {}),
    to: destination.address,
    subject: content.subject,
    html: content.html,
    text: content.text,
    headers: content.headers,
    messageId: `<${task.deliveryId}@herald>`,
  };
}
